"""The pipelines a sweep can run: every training pipeline of :mod:`rl4rec.registry`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rl4rec.registry import get_pipeline, sweep_tasks

__all__ = ["get_task", "task_names"]


def task_names() -> list[str]:
    return sorted(sweep_tasks())


def get_task(name: str) -> tuple[type, Callable[[Any], Any]]:
    """The config class and train function of a sweepable pipeline; unknown names list the valid ones."""
    pipeline = get_pipeline(name)
    if not pipeline.trains:
        raise KeyError(f"{name!r} is an evaluation, not a training pipeline; sweepable: {', '.join(task_names())}")
    return pipeline.config_class(), pipeline.run
