"""Errors that mean "the input is wrong", not "the code is wrong": the CLI prints their message
(which names the file, line or key) in one line and exits with 2, without a traceback."""

from __future__ import annotations

__all__ = ["InputError", "NonFiniteError"]


class InputError(ValueError):
    """Malformed user data (a CSV row, a SID file, a dataset folder)."""


class NonFiniteError(RuntimeError):
    """A NaN or infinite loss, reward or gradient: the run stops, its last good checkpoint intact."""
