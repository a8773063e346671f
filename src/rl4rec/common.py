"""Config sections shared by every run: identity, seed, threads, resume and tracking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rl4rec.config import ConfigError, field

TrackerName = Literal["tensorboard", "wandb", "swanlab"]


@dataclass(frozen=True)
class TrackingConfig:
    """Where metrics go besides ``metrics.jsonl`` (which is always written)."""

    backends: tuple[TrackerName, ...] = field(
        ("tensorboard",), "extra trackers: any of tensorboard, wandb, swanlab ([] for JSONL only)"
    )
    project: str = field("rl4rec", "project name passed to W&B / SwanLab")
    mode: Literal["offline", "online"] = field(
        "offline", "W&B / SwanLab mode; offline makes no network call"
    )
    log_every: int = field(1, "write train metrics every N steps", ge=1)


@dataclass(frozen=True)
class RunConfig:
    """Fields every runnable config carries. Family configs subclass this.

    ``NAME_KEYS`` lists dotted keys that always open the run name (e.g. agent, ranker, env),
    whether or not they differ from the defaults; every other field that differs from its
    default follows, then the seed.
    """

    SHARED_KEYS: ClassVar[bool] = True  # see rl4rec.config._name_order

    NAME_KEYS: ClassVar[tuple[str, ...]] = ()
    #: keys never used in run names (bookkeeping, not the experiment's substance)
    NAME_EXCLUDE: ClassVar[tuple[str, ...]] = (
        "experiment",
        "seed",
        "threads",
        "resume",
        "runs_dir",
        "run_name",
        "description",
        "tags",
        "progress",
        "tracking",
        "stop_at_step",  # a simulated SIGTERM: the run it stops is the same run, resumed
    )

    experiment: str = field("default", "experiment name; runs go to <runs_dir>/<experiment>/<run_name>")
    run_name: str = field("", "run name; empty builds one from the config values that differ from the defaults and the seed")
    runs_dir: str = field("runs", "root directory of all runs")
    seed: int = field(0, "seeds python, numpy and torch; same config + seed gives identical metrics on CPU", ge=0)
    threads: int = field(0, "torch/OpenMP threads; 0 = all cores (sweeps set 1 per worker)", ge=0)
    resume: bool = field(False, "continue the run from its 'last' checkpoint if one exists")
    description: str = field("", "free-text description stored with the run and sent to trackers")
    tags: tuple[str, ...] = field((), "tags stored with the run and sent to trackers")
    progress: bool = field(True, "show progress bars (plain log lines when not a TTY)")
    tracking: TrackingConfig = field(default_factory=TrackingConfig, help="metric trackers")

    def check(self) -> None:
        """Cross-field validation; subclasses extend it (call super().check())."""
        for ch in "/\\":
            if ch in self.experiment or ch in self.run_name:
                raise ConfigError(f"experiment/run_name must not contain {ch!r}")
