"""A tiny end-to-end training run that exercises configs, runs, checkpoints, resume and tracking.

It fits a small MLP to a fixed synthetic regression task (data generated from the seed, so it
needs no files). It is the foundation's reference loop: every family's training loop follows the
same shape (build from config -> resume -> loop with periodic eval/checkpoint -> results JSON).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from rl4rec.config import field
from rl4rec.training import Task, TrainingConfig, default, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeConfig(TrainingConfig):
    """Config of ``rl4rec smoke``: a tiny regression model trained with Adam."""

    NAME_KEYS = ("model",)

    experiment: str = field("smoke", "experiment name")
    model: str = field("mlp", "model name (only 'mlp'); leads the run name", short="")
    steps: int = field(300, "optimizer steps", ge=1)
    batch_size: int = field(64, "examples per step", ge=1)
    hidden: int = field(32, "hidden units of the MLP", ge=1)
    lr: float = default(TrainingConfig, "lr", 1e-2)
    eval_every: int = default(TrainingConfig, "eval_every", 50)
    save_every: int = default(TrainingConfig, "save_every", 50)
    keep_every: int = default(TrainingConfig, "keep_every", 100)
    select_metric: str = default(TrainingConfig, "select_metric", "eval/mse", "validation metric choosing the best checkpoint (lower is better)")
    step_sleep: float = field(0.0, "seconds to sleep per step (tests use it to kill a run mid-way)", ge=0.0)


def _task(seed: int):
    import torch

    g = torch.Generator().manual_seed(10_000 + seed)
    w = torch.randn(8, 1, generator=g) / 8**0.5  # x @ w ~ N(0, 1): learnable by a small MLP
    x = torch.randn(2048, 8, generator=g)
    y = torch.sin(x @ w) + 0.05 * torch.randn(2048, 1, generator=g)
    return (x[:1536], y[:1536]), (x[1536:], y[1536:])


class SmokeTask(Task):
    """The reference task of :func:`rl4rec.training.fit`: an MLP on a seeded regression problem."""

    select_mode = "min"
    STATE = ("model", "opt", "sampler")

    def __init__(self, cfg: SmokeConfig, run, dev):
        import torch

        self.cfg, self.dev = cfg, dev
        (self.x_tr, self.y_tr), (self.x_ev, self.y_ev) = _task(cfg.seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(8, cfg.hidden), torch.nn.Tanh(), torch.nn.Linear(cfg.hidden, 1))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        self.name, self.total_steps, self.eval_every, self.select_key = "smoke", cfg.steps, cfg.eval_every, cfg.select_metric

    def train_step(self, step: int) -> dict[str, float]:
        import torch

        idx = torch.randint(0, len(self.x_tr), (self.cfg.batch_size,), generator=self.sampler)
        loss = torch.nn.functional.mse_loss(self.model(self.x_tr[idx]), self.y_tr[idx])
        self.opt.zero_grad()
        loss.backward()
        self.dev.step(self.opt, self.model.parameters(), self.cfg.grad_clip)
        if self.cfg.step_sleep:
            time.sleep(self.cfg.step_sleep)
        return {"train/loss": loss.item()}

    def mse(self) -> float:
        import torch

        with torch.no_grad():
            return torch.nn.functional.mse_loss(self.model(self.x_ev), self.y_ev).item()

    def validate(self, step: int) -> dict[str, float]:
        return {"eval/mse": self.mse()}

    def test(self, loop: dict) -> dict:
        return {"eval/mse": self.mse(), "eval/best_mse": float(loop["best"])}


def train_smoke(cfg: SmokeConfig) -> dict | None:
    """Train and return the final metrics (None if stopped by SIGTERM); resumable and deterministic."""
    return fit(cfg, lambda run, dev: SmokeTask(cfg, run, dev), key_metric="eval/mse")


def format_results(result: dict) -> str:
    return " ".join(f"{k}={result[k]:.5f}" for k in ("eval/mse", "eval/best_mse"))
