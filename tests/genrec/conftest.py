"""Fixtures of the genrec tests: the shared Amazon folders (the synthetic category is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing_data


@pytest.fixture(scope="session")
def amazon(shared_data) -> Path:
    path = shared_data / "amazon"
    if not (path / "Industrial_and_Scientific").is_dir():
        missing_data(f"{path}/Industrial_and_Scientific not found")
    return path
