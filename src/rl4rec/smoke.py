"""A tiny end-to-end training run that exercises configs, runs, checkpoints, resume and tracking.

It fits a small MLP to a fixed synthetic regression task (data generated from the seed, so it
needs no files). It is the foundation's reference loop: every family's training loop follows the
same shape (build from config -> resume -> loop with periodic eval/checkpoint -> results JSON).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

from rl4rec.common import RunConfig
from rl4rec.config import field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeConfig(RunConfig):
    """Config of ``rl4rec smoke``: a tiny regression model trained with Adam."""

    NAME_KEYS = ("model",)

    experiment: str = field("smoke", "experiment name")
    model: str = field("mlp", "model name (only 'mlp'); leads the run name", short="")
    steps: int = field(300, "optimizer steps", ge=1)
    batch_size: int = field(64, "examples per step", ge=1)
    hidden: int = field(32, "hidden units of the MLP", ge=1)
    lr: float = field(1e-2, "Adam learning rate", gt=0.0)
    eval_every: int = field(50, "evaluate on the held-out set every N steps", ge=1)
    save_every: int = field(50, "write last.pt (and step_N.pt) every N steps", ge=1)
    keep_every: int = field(100, "keep step_N.pt every N steps (0 = never)", ge=0)
    step_sleep: float = field(0.0, "seconds to sleep per step (tests use it to kill a run mid-way)", ge=0.0)


def _task(seed: int):
    import torch

    g = torch.Generator().manual_seed(10_000 + seed)
    w = torch.randn(8, 1, generator=g) / 8**0.5  # x @ w ~ N(0, 1): learnable by a small MLP
    x = torch.randn(2048, 8, generator=g)
    y = torch.sin(x @ w) + 0.05 * torch.randn(2048, 1, generator=g)
    return (x[:1536], y[:1536]), (x[1536:], y[1536:])


def train_smoke(cfg: SmokeConfig) -> dict | None:
    """Train and return the final metrics (None if stopped by SIGTERM); resumable and deterministic."""
    import torch

    from rl4rec.progress import track
    from rl4rec.runs import Run

    with Run(cfg, key_metric="eval/mse") as run:
        (x_tr, y_tr), (x_ev, y_ev) = _task(cfg.seed)
        model = torch.nn.Sequential(torch.nn.Linear(8, cfg.hidden), torch.nn.Tanh(), torch.nn.Linear(cfg.hidden, 1))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        best = float("inf")
        if run.resume_state is not None:
            model.load_state_dict(run.resume_state["model"])
            opt.load_state_dict(run.resume_state["optimizer"])
            best = float(run.resume_state["best"])
        sampler = torch.Generator().manual_seed(cfg.seed)
        if run.resume_state is not None:
            sampler.set_state(run.resume_state["sampler"])
        result = {}
        t0 = time.perf_counter()
        steps = range(run.start_step + 1, cfg.steps + 1)

        def state() -> dict:
            return {"model": model.state_dict(), "optimizer": opt.state_dict(), "best": best, "sampler": sampler.get_state()}

        for step in track(steps, desc="smoke", enabled=cfg.progress, unit="step"):
            if run.stop_requested:  # SIGTERM: save where we are, then leave as 'stopped'
                run.save_checkpoint(state(), step - 1)
                run.check_stop()
            idx = torch.randint(0, len(x_tr), (cfg.batch_size,), generator=sampler)
            loss = torch.nn.functional.mse_loss(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cfg.step_sleep:
                time.sleep(cfg.step_sleep)
            if step % cfg.tracking.log_every == 0:
                run.log_metrics({"train/loss": loss.item(), "perf/steps_per_s": step / (time.perf_counter() - t0 + 1e-9)}, step)
            is_best = False
            if step % cfg.eval_every == 0 or step == cfg.steps:
                with torch.no_grad():
                    mse = torch.nn.functional.mse_loss(model(x_ev), y_ev).item()
                is_best = mse < best
                best = min(best, mse)
                result = {"eval/mse": mse, "eval/best_mse": best}
                run.log_metrics(result, step)
                log.info("step %d eval/mse %.5f", step, mse)
            if step % cfg.save_every == 0 or step == cfg.steps:
                keep = bool(cfg.keep_every) and step % cfg.keep_every == 0
                run.save_checkpoint(state(), step, keep=keep, best=is_best)
        if not result:  # resumed after the last step: report the stored final numbers
            with torch.no_grad():
                result = {"eval/mse": torch.nn.functional.mse_loss(model(x_ev), y_ev).item(), "eval/best_mse": best}
        run.write_result("results.json", result)
        return result


def _cmd_smoke(args: argparse.Namespace) -> int:
    from rl4rec.config import load_config

    cfg = load_config(SmokeConfig, args.config, args.overrides)
    result = train_smoke(cfg)
    if result is None:
        print("stopped; continue with resume=true")
        return 0
    print(" ".join(f"{k}={v:.5f}" for k, v in result.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from rl4rec.cli import add_config_arguments

    p = sub.add_parser("smoke", help="tiny end-to-end training run (checks the install, runs, resume)")
    p.add_argument("--config", default=None, help="optional YAML config")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_smoke)
