"""The one training loop: every pipeline is a small task object run by :func:`fit`.

A task builds its objects from the config, does one training step, validates, declares its state
and tests; :func:`fit` owns everything around that, the same way for every pipeline:

- the run folder (:class:`rl4rec.runs.Run`): resolved config, metrics, log, status;
- resume: the task's state, the loop's state and then, once every object is built, the RNGs;
- periodic validation (``eval_every``), best selection on ``select_metric`` and ``patience``
  (the run stops right after the validation that exhausts it);
- atomic ``last`` / ``best`` / ``step_N`` checkpoints (``save_every``, ``keep_every``);
- stopping: SIGTERM, ``Run.request_stop()`` or ``stop_at_step`` on any process stops every
  process after a checkpoint; the run is marked ``stopped`` and resumes with ``resume=true``;
- multi-process runs: one process (rank 0) writes the folder and validates; the others follow;
- test at the end (``test_at_end``) and ``test_results.json``;
- the progress bar and the ``perf/step_s``, ``perf/steps_per_s`` metrics.

The shared training keys are declared once here (:class:`LoopConfig` for the loop and devices,
:class:`TrainingConfig` adding the optimizer keys); pipeline configs extend them and change a
default with :func:`default` instead of re-declaring a key.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field
from rl4rec.devices import Devices, check_device_keys
from rl4rec.errors import NonFiniteError
from rl4rec.progress import track
from rl4rec.runs import Run, StopRequested

log = logging.getLogger(__name__)

__all__ = ["DeviceConfig", "LoopConfig", "TrainingConfig", "Task", "fit", "default", "lr_lambda", "check_rank_metric"]


@dataclass(frozen=True)
class DeviceConfig(RunConfig):
    """Where a run computes and in which precision: the keys of every training command."""

    SHARED_KEYS: ClassVar[bool] = True  # see rl4rec.config._name_order
    #: where a run computes is not what it computes (mixed precision is, and stays in names)
    NAME_EXCLUDE = (*RunConfig.NAME_EXCLUDE, "device")

    device: Literal["auto", "cpu", "cuda"] = field("auto", "auto: CUDA when visible, else CPU; cuda where none is visible is an error")
    mixed_precision: Literal["no", "bf16", "fp16"] = field("no", "autocast precision of forward passes (fp16 needs CUDA; bf16 works on CPU too)")

    def check(self) -> None:
        super().check()
        check_device_keys(self.device, self.mixed_precision)


@dataclass(frozen=True)
class LoopConfig(DeviceConfig):
    """Keys of the one loop, shared by every training pipeline."""

    SHARED_KEYS: ClassVar[bool] = True  # see rl4rec.config._name_order

    eval_every: int = field(0, "validate every N steps (0 = the pipeline's default cadence, e.g. once per epoch)", ge=0)
    eval_at_start: bool = field(False, "validate before the first step (step 0), so 'best' is never worse than the start")
    select_metric: str = field("", "validation metric choosing the best checkpoint (empty = the pipeline's own)")
    patience: int = field(0, "stop after this many validations without improvement (0 = never)", ge=0)
    save_every: int = field(0, "write checkpoints/last.pt every N steps besides the validation steps (0 = at validations only)", ge=0)
    keep_every: int = field(0, "keep checkpoints/step_N.pt every N steps (0 = only last and best)", ge=0)
    test_at_end: bool = field(True, "evaluate the best checkpoint on the test split at the end")
    stop_at_step: int = field(0, "tests: act as if SIGTERM arrived after this step (0 = never)", ge=0)
    skip_nonfinite: bool = field(False, "skip an update whose gradients are NaN/inf (counted in train/skipped_steps) instead of stopping the run")


@dataclass(frozen=True)
class TrainingConfig(LoopConfig):
    """:class:`LoopConfig` plus the optimizer and schedule keys of gradient-trained pipelines."""

    SHARED_KEYS: ClassVar[bool] = True  # see rl4rec.config._name_order

    lr: float = field(1e-3, "peak learning rate", gt=0.0)
    weight_decay: float = field(0.0, "weight decay", ge=0.0, short="wd")
    warmup_steps: int = field(0, "linear warm-up steps (0 = warmup_ratio decides)", ge=0)
    warmup_ratio: float = field(0.0, "linear warm-up as a share of all steps (used when warmup_steps is 0)", ge=0.0, lt=1.0)
    schedule: Literal["linear", "cosine", "constant"] = field("linear", "decay after warm-up")
    grad_clip: float = field(0.0, "max gradient norm (0 = off)", ge=0.0)

    def warmup(self, total: int) -> int:
        return self.warmup_steps or int(self.warmup_ratio * total)


def default(owner: type, name: str, value: Any, help: str | None = None) -> Any:
    """A new default for a key declared in ``owner`` (its help, bounds and short name kept).

    ``lr: float = default(TrainingConfig, "lr", 5e-3)`` changes the default only: the key stays
    declared (and checked) once.
    """
    meta = owner.__dataclass_fields__[name].metadata
    return field(value, help or meta["help"], **{k: meta[k] for k in ("ge", "gt", "le", "lt", "short")})


def check_rank_metric(metric: str, max_k: int | None = None, what: str = "beams") -> None:
    """``select_metric`` of a ranking pipeline: ``hr@K`` | ``ndcg@K`` | ``mrr@K``."""
    name, _, k = metric.partition("@")
    if name not in ("hr", "ndcg", "mrr") or not k.isdigit():
        raise ConfigError(f"select_metric: {metric!r} must look like ndcg@10, hr@5 or mrr@20")
    if max_k is not None and int(k) > max_k:
        raise ConfigError(f"select_metric: K={k} exceeds {what}={max_k} (K must be <= {what})")


def reported_ks(ks, select_metric: str, beams: int | None = None) -> tuple[int, ...]:
    """The cut-offs a ranking pipeline reports: ``ks`` (those <= ``beams`` when given) and the K of
    ``select_metric``, sorted."""
    kept = {k for k in ks if beams is None or k <= beams}
    return tuple(sorted(kept | {int(select_metric.split("@")[1])}))


def lr_lambda(warmup: int, schedule: str, total: int, floor: float = 0.1):
    """LambdaLR factor: linear warm-up, then linear decay to 0, cosine to ``floor``, or constant."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return max(0.0, 1.0 - frac)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))

    return f


class Task:
    """What a pipeline supplies to :func:`fit`. Subclass and fill in; attributes set in ``__init__``.

    Attributes:
        name: progress-bar label. unit: what one step is (``step``, ``epoch``).
        total_steps: steps of the whole run. eval_every: validation cadence in steps.
        select_key: metric key (e.g. ``valid/ndcg@10``) of :meth:`validate` choosing the best.
        select_mode: ``max`` or ``min``.
    """

    name: str = "train"
    unit: str = "step"
    total_steps: int = 0
    eval_every: int = 1
    select_key: str = ""
    select_mode: ClassVar[str] = "max"
    #: validate at step 0 whatever ``cfg.eval_at_start`` says (a model with nothing to train)
    eval_at_start: bool = False

    def train_step(self, step: int) -> dict[str, float]:
        """One step (1-based); returns ``train/*`` metrics (logged every ``log_every``)."""
        raise NotImplementedError

    def validate(self, step: int) -> dict[str, float]:
        """Validation metrics (``valid/*`` or ``eval/*``), on the main process only."""
        raise NotImplementedError

    def select(self, metrics: dict[str, float], best: float) -> bool:
        """Whether ``metrics`` beat ``best``; a task tracking its own best (per seed) overrides it."""
        score = metrics[self.select_key]
        return score > best if self.select_mode == "max" else score < best

    #: attributes making up the task's state: modules, optimizers and schedulers (their
    #: ``state_dict``), generators (their RNG state) and plain numbers. Declared, never discovered.
    STATE: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: the :attr:`STATE` attributes."""
        return {name: _state_of(getattr(self, name)) for name in self.STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            value = getattr(self, name)
            if isinstance(value, torch.Generator):
                value.set_state(state[name])
            elif hasattr(value, "load_state_dict"):
                value.load_state_dict(state[name])
            elif isinstance(value, (int, float)):
                setattr(self, name, type(value)(state[name]))
            else:
                setattr(self, name, state[name])

    def save_model(self, folder, info: dict[str, Any]) -> None:
        """Write a loadable model folder: :func:`fit` asks for ``model/last`` at every checkpoint and
        ``model/best`` on a new best (main process only); the default writes none."""

    def summary(self) -> dict[str, Any]:
        """What the result file says of the run besides the loop's numbers (data, sizes)."""
        return {}

    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        """Test the best checkpoint (main process only); merged into the result."""
        return {}

    def log_test(self, metrics: dict[str, Any], step: int) -> None:
        """Log a test result's ranking metrics (``test/hr@10``, ...; not their intervals) at ``step``."""
        ranking = {k: v for k, v in metrics.items() if "@" in k and not k.endswith("ci95") and isinstance(v, float)}
        self.run.log_metrics({f"test/{k}": v for k, v in ranking.items()}, step)


def _state_of(value: Any) -> Any:
    if isinstance(value, torch.Generator):
        return value.get_state()
    return value.state_dict() if hasattr(value, "state_dict") else value


def fit(cfg: LoopConfig, build, *, key_metric: str | None = None) -> dict[str, Any] | None:
    """Run a pipeline: ``build(run, devices) -> Task``; returns the result (``None`` when stopped).

    The result holds the task's :meth:`~Task.summary`, the loop's numbers (``steps``,
    ``steps_planned``, ``best_step``, ``best_valid``, ``early_stopped``, ``train_s``), the task's
    :meth:`~Task.test` and ``wall_s``; it is written to ``test_results.json``.
    """
    t_start = time.perf_counter()
    dev = Devices(cfg.device, cfg.mixed_precision, skip_nonfinite=cfg.skip_nonfinite)
    run = Run(cfg, key_metric=key_metric, follower=not dev.is_main)
    if not dev.is_main:
        dev.wait()  # the main process creates (or refuses) the folder first
    with run:
        if dev.is_main:
            dev.wait()
        task = build(run, dev)
        loop = {"best": -math.inf if task.select_mode == "max" else math.inf, "best_step": 0, "bad": 0, "early_stopped": False,
                "train_s": 0.0, "last_step": 0, "start_valid": None}
        if run.resume_state is not None:
            task.load_state_dict(run.resume_state["task"])
            loop.update(run.resume_state["loop"])
        run.restore_rng()  # once, after everything is built
        saved = {"step": -1}

        def save(step: int, best: bool = False, metrics: dict | None = None, keep: bool = False) -> None:
            loop["last_step"] = step
            run.save_checkpoint({"task": task.state_dict(), "loop": dict(loop)}, step, keep=keep, best=best)
            if dev.is_main and type(task).save_model is not Task.save_model:  # model/last, and model/best on a new best
                task.save_model(run.layout.model("last"), {"step": step})
                if best:
                    task.save_model(run.layout.model("best"), {"step": step, "valid": metrics})
            saved["step"] = step
            dev.wait()

        def validate(step: int) -> tuple[bool, dict]:
            metrics: dict[str, float] = {}
            improved = False
            if dev.is_main:
                metrics = task.validate(step)
                improved = task.select(metrics, loop["best"])
                if improved:
                    loop.update(best=float(metrics[task.select_key]) if task.select_key in metrics else loop["best"], best_step=step, bad=0)
                else:
                    loop["bad"] += 1
                run.log_metrics(metrics, step)
                shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                 if isinstance(v, float) and "/" in k and "ci95" not in k and not k.startswith("perf/"))
                log.info("step %d/%d %s", step, task.total_steps, shown)
            return dev.any(improved), metrics

        total = task.total_steps
        if run.start_step == 0 and (cfg.eval_at_start or task.eval_at_start):
            improved, m0 = validate(0)
            loop["start_valid"] = m0 or None
            save(0, best=True, metrics=m0)
        done = loop["early_stopped"] or run.start_step >= total
        t_loop, steps_run = time.perf_counter(), 0
        steps = range(run.start_step + 1, total + 1) if not done else range(0)
        for step in track(steps, desc=task.name, enabled=cfg.progress and dev.is_main and not done, unit=task.unit):
            if dev.any(run.stop_requested):  # SIGTERM on any process: every process saves and stops
                run.request_stop()
                if saved["step"] != step - 1:
                    save(step - 1)
                raise StopRequested()
            t0 = time.perf_counter()
            skipped = dev.skipped
            metrics = task.train_step(step)
            _check_finite(metrics, step, skipped_now=dev.skipped > skipped, last=saved["step"], run_dir=run.dir)
            metrics["train/skipped_steps"] = float(dev.skipped)
            step_s = time.perf_counter() - t0
            loop["train_s"] += step_s
            loop["last_step"] = step
            steps_run += 1
            if step % cfg.tracking.log_every == 0:
                run.log_metrics({**metrics, "perf/step_s": step_s, "perf/steps_per_s": steps_run / (time.perf_counter() - t_loop + 1e-9)}, step)
            evaluated = step % task.eval_every == 0 or step == total
            improved, vm = validate(step) if evaluated else (False, None)
            if evaluated and cfg.patience and dev.any(loop["bad"] >= cfg.patience):
                loop["early_stopped"] = True
                log.info("early stop at step %d: %d validations without improvement (best %s at step %d)",
                         step, cfg.patience, loop["best"], loop["best_step"])
            keep = bool(cfg.keep_every) and step % cfg.keep_every == 0
            if evaluated or keep or (cfg.save_every and step % cfg.save_every == 0) or cfg.stop_at_step == step:
                save(step, best=improved, metrics=vm, keep=keep)
            if loop["early_stopped"]:
                break
            if cfg.stop_at_step == step and step < total:
                run.request_stop()

        result: dict[str, Any] = {
            **task.summary(),
            "seed": cfg.seed,
            "steps": int(loop["last_step"]),
            "steps_planned": total,
            "early_stopped": bool(loop["early_stopped"]),
            "best_step": int(loop["best_step"]),
            "best_valid": {task.select_key.split("/", 1)[-1]: loop["best"]},
            "start_valid": loop["start_valid"],
            "train_s": float(loop["train_s"]),
            "devices": dev.describe(),
            "run_dir": str(run.dir),
        }
        if cfg.test_at_end and dev.is_main:
            result.update(task.test(loop))
        result["wall_s"] = time.perf_counter() - t_start
        run.write_result("test_results.json", result)
        dev.wait()
        return result


def _check_finite(metrics: dict[str, Any], step: int, *, skipped_now: bool, last: int, run_dir) -> None:
    """A NaN/inf loss or reward stops the run (its checkpoints stay as they were), unless the device
    layer skipped this step's update (``skip_nonfinite``)."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v) and any(w in k for w in ("loss", "reward", "return"))]
    if bad and not skipped_now:
        kept = f"the last good checkpoint is {run_dir}/checkpoints/last.pt (step {last})" if last >= 0 else "no checkpoint was written yet"
        raise NonFiniteError(f"step {step}: non-finite {', '.join(bad)}; the run stops, {kept}; skip_nonfinite=true skips such updates instead")


def format_run(head: str, result: dict[str, Any]) -> str:
    """What a training command prints: ``head``, the result's comparison table if any, its file."""
    table = [result["table"]] if "table" in result else []
    return "\n".join([head, *table, f"results: {result['run_dir']}/test_results.json"])

