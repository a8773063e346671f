"""Named pipelines a sweep can run: ``name -> (config class, train function)``.

Entries are import strings so that listing tasks imports nothing heavy. A train function takes
the config object, runs it inside a :class:`rl4rec.runs.Run` and returns its final metrics.
Families add their pipelines here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

TASKS: dict[str, tuple[str, str]] = {
    "smoke": ("rl4rec.smoke:SmokeConfig", "rl4rec.smoke:train_smoke"),
    "slate.train": ("rl4rec.slate.train:SlateTrainConfig", "rl4rec.slate.train:train_slate"),
    "genrec.baseline": ("rl4rec.genrec.baselines.train:BaselineConfig", "rl4rec.genrec.baselines.train:train_baseline"),
    "slate.pretrain": ("rl4rec.slate.pretrain:SlatePretrainConfig", "rl4rec.slate.pretrain:pretrain_ranker"),
    "genrec.sft": ("rl4rec.genrec.sft:SFTConfig", "rl4rec.genrec.sft:train_sft"),
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_task(name: str) -> tuple[type, Callable[[Any], Any]]:
    """The config class and train function of a task; unknown names list the valid ones."""
    if name not in TASKS:
        import difflib

        near = difflib.get_close_matches(name, TASKS, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise KeyError(f"unknown task {name!r}{hint}; known tasks: {', '.join(sorted(TASKS))}")
    cfg_path, fn_path = TASKS[name]
    return _load(cfg_path), _load(fn_path)
