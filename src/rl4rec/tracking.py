"""Metric sinks. ``metrics.jsonl`` is always written; TensorBoard, W&B and SwanLab are adapters.

Trackers are chosen by ``tracking.backends`` in the config and never by environment variables.
W&B and SwanLab run offline by default (no network call); their packages are optional extras.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl4rec.common import TrackingConfig
from rl4rec.errors import InputError


class JsonlTracker:
    """One JSON object per line: ``{"step": N, "time": t, "<ns>/<name>": value, ...}``."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = path.open("a", buffering=1)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        record = {"step": step, "time": round(time.time(), 3)}
        for key, value in metrics.items():
            value = float(value) if hasattr(value, "__float__") and not isinstance(value, (int, bool)) else value
            record[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class TensorBoardTracker:
    """Event files under ``<run>/tensorboard``; ``purge_step`` drops events past a resumed step."""

    def __init__(self, logdir: Path, purge_step: int | None = None, text: str = ""):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(logdir), purge_step=purge_step)
        if text:
            self.writer.add_text("run/description", text, global_step=purge_step or 0)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class HostedTracker:
    """W&B or SwanLab: ``<module>.init(**settings)`` starts the run that receives ``log`` and ``finish``."""

    def __init__(self, module: str, **settings: Any):
        import importlib

        try:
            lib = importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise RuntimeError(
                f"tracking.backends includes {module!r} but it is not installed; "
                f"install it with: pip install 'rl4rec[{module}]'"
            ) from err
        self.run = lib.init(**settings)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """Fan-out to every configured tracker; JSONL first so nothing is lost if an adapter fails."""

    def __init__(
        self,
        run_dir: Path,
        name: str,
        cfg: TrackingConfig,
        config: dict,
        tags=(),
        notes: str = "",
        resume_step: int | None = None,
    ):
        self.sinks: list[Any] = [JsonlTracker(run_dir / "metrics.jsonl")]
        for backend in cfg.backends:
            if backend == "tensorboard":
                purge = resume_step + 1 if resume_step is not None else None
                sink = TensorBoardTracker(run_dir / "tensorboard", purge, notes)
            elif backend == "wandb":
                sink = HostedTracker(
                    "wandb",
                    project=cfg.project,
                    name=name,
                    id=name[:128].replace("/", "-"),
                    resume="allow",
                    dir=str(run_dir),
                    mode=cfg.mode,
                    config=config,
                    tags=list(tags),
                    notes=notes,
                )
            elif backend == "swanlab":
                sink = HostedTracker(
                    "swanlab",
                    project=cfg.project,
                    experiment_name=name,
                    description=notes or None,  # swanlab rejects an empty string
                    config=config,
                    tags=list(tags),
                    logdir=str(run_dir / "swanlab"),
                    mode="local" if cfg.mode == "offline" else "cloud",
                )
            else:  # validated by the config's Literal type; kept as a guard
                raise ValueError(f"unknown tracker {backend!r}")
            self.sinks.append(sink)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key in metrics:
            if "/" not in key:
                raise ValueError(f"metric key {key!r} has no namespace; use e.g. 'train/{key}', 'eval/{key}', 'perf/{key}'")
        for sink in self.sinks:
            sink.log(metrics, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``. Only a torn *last* line (a process killed mid-write) is
    ignored; a malformed line before it is an :class:`~rl4rec.errors.InputError` naming
    ``file:line``, since skipping it would silently drop steps."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            if i == len(lines):
                break  # torn by a kill: the resume truncates it
            raise InputError(f"{path}:{i}: not a JSON metrics record: {line[:80]!r}")
        records.append(rec)
    return records
