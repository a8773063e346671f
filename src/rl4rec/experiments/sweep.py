"""Sweeps: a base config x named methods x a grid of overrides x seeds, run locally or on Ray.

A sweep file (YAML) is a :class:`SweepConfig`. Every member run is an ordinary run directory
under ``<runs_dir>/<experiment>/`` named from its config, so a sweep is resumable by construction:
finished runs are skipped, killed or stopped ones continue from ``last`` (members always run with
``resume=true``), and a failing run is retried up to ``max_retries`` times and then reported —
it never stops the others. ``sweep.json`` in the experiment directory records which method, grid
point and seed each run is, for reports.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rl4rec.config import ConfigError, apply_overrides, field, load_yaml, to_dict
from rl4rec.runs import atomic_write_text, read_status, run_dir_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: which task, which base config, which methods, grid and seeds, and where to run."""

    experiment: str = field("", "experiment name (the runs' directory under runs_dir); required")
    description: str = field("", "what the sweep measures: shown under its title in reports")
    task: str = field("smoke", "training pipeline to run (a name of rl4rec.registry.PIPELINES), e.g. slate.train, genrec.grpo")
    base: str = field("", "base YAML config of every run (relative paths are relative to the sweep file)")
    overrides: tuple[str, ...] = field((), "key=value overrides applied to every run")
    methods: dict[str, tuple[str, ...]] = field({}, "named override sets: one row per method in reports")
    tasks: dict[str, str] = field({}, "method -> its pipeline when not `task` (e.g. a baseline beside SFT and GRPO)")
    bases: dict[str, str] = field({}, "method -> its base YAML config when not `base` (e.g. the SFT recipe beside the GRPO one)")
    init_from: dict[str, str] = field({}, "method -> the method whose run (same seed and grid point) it starts from (init_from=); it runs after it")
    grid: dict[str, tuple[Any, ...]] = field({}, "config key -> values; the runs take every combination")
    seeds: tuple[int, ...] = field((0,), "seeds; every method x grid point runs once per seed")
    backend: Literal["local", "ray"] = field("local", "local worker processes or Ray tasks")
    workers: int = field(0, "parallel runs (0 = number of cores); each run uses threads_per_run threads", ge=0)
    threads_per_run: int = field(1, "torch threads of each run (1: no oversubscription on small machines)", ge=1)
    max_retries: int = field(1, "re-launch a failing run this many times (it resumes from 'last')", ge=0)
    ray_address: str = field("", "Ray cluster address ('' starts a local Ray instance; 'auto' joins a running one)")
    ray_object_store_mb: int = field(256, "object store size of a local Ray instance, MB (small machines)", ge=64)
    runs_dir: str = field("runs", "root directory of all runs")
    report_columns: tuple[str, ...] = field((), "grid keys shown as table columns in reports (e.g. env); others form rows")
    report_metrics: tuple[str, ...] = field((), "result keys to tabulate (empty: every numeric result)")

    def check(self) -> None:
        if not self.experiment:
            raise ConfigError("experiment: a sweep needs an experiment name")
        missing = [k for k in self.report_columns if k not in self.grid]
        if missing:
            raise ConfigError(f"report_columns: {missing} are not grid keys ({list(self.grid)})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: duplicates in {list(self.seeds)}")
        order = list(self.methods)
        for key, names in (("tasks", list(self.tasks)), ("bases", list(self.bases)), ("init_from", [*self.init_from, *self.init_from.values()])):
            unknown = [n for n in names if n not in order]
            if unknown:
                raise ConfigError(f"{key}: {unknown[0]!r} is not a method ({order})")
        late = [m for m, src in self.init_from.items() if order.index(src) >= order.index(m)]
        if late:
            raise ConfigError(f"init_from: {late[0]!r} starts from {self.init_from[late[0]]!r}, which must come before it in methods")


@dataclass(frozen=True)
class Member:
    """One run of a sweep: its identity in the sweep and its full config mapping."""

    name: str
    method: str
    point: dict[str, Any]
    seed: int
    config: dict[str, Any]
    task: str
    #: the member whose run this one starts from (``init_from``), if any
    after: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"task": self.task, "config": self.config}


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[SweepConfig, Path]:
    return apply_overrides(SweepConfig, load_yaml(path), overrides), Path(path).parent


def expand(sweep: SweepConfig, base_dir: Path = Path(".")) -> list[Member]:
    """Every member run, in a stable order (method, grid point, seed)."""
    from rl4rec.registry import get_task

    methods = dict(sweep.methods) or {"default": ()}
    # an absolute base name stays absolute
    bases = {m: load_yaml(base_dir / b) if (b := sweep.bases.get(m, sweep.base)) else {} for m in methods}
    keys = list(sweep.grid)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(sweep.grid[k] for k in keys))]
    members, seen, by_cell = [], {}, {}
    for method, method_overrides in methods.items():
        task = sweep.tasks.get(method, sweep.task)
        try:
            cfg_cls, _ = get_task(task)
        except KeyError as err:
            raise ConfigError(f"method {method!r}: {err.args[0]}") from err
        for point in points:
            for seed in sweep.seeds:
                source = by_cell.get((sweep.init_from.get(method), json.dumps(point, sort_keys=True), seed))
                chained = [f"init_from={Path(sweep.runs_dir) / sweep.experiment / source.name}"] if source else []
                grid_overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in point.items()]
                fixed = [
                    f"experiment={sweep.experiment}",
                    f"runs_dir={sweep.runs_dir}",
                    f"seed={seed}",
                    f"threads={sweep.threads_per_run}",
                    "progress=false",
                    "resume=true",
                ]
                try:
                    cfg = apply_overrides(cfg_cls, bases[method], [*sweep.overrides, *method_overrides, *grid_overrides, *chained, *fixed])
                except ConfigError as err:
                    raise ConfigError(f"sweep method {method!r}, point {point}: {err}") from err
                name = run_dir_for(cfg).name
                if name in seen:
                    raise ConfigError(
                        f"methods {seen[name]!r} and {method!r} produce the same run {name!r}; "
                        "give them different overrides"
                    )
                seen[name] = method
                member = Member(name, method, point, seed, to_dict(cfg), task, source.name if source else None)
                by_cell[(method, json.dumps(point, sort_keys=True), seed)] = member
                members.append(member)
    return members


def _ready(member: Member, outcome: dict[str, str]) -> bool | None:
    """Can ``member`` start: True, False (its source run is not done yet) or None (the source failed)."""
    if member.after is None:
        return True
    done = outcome.get(member.after)
    if done is None:
        return False
    return None if done.startswith(("failed", "stopped")) else True


def _status(sweep: SweepConfig, member: Member) -> str:
    run_dir = Path(sweep.runs_dir) / sweep.experiment / member.name
    return read_status(run_dir)["status"] if run_dir.exists() else "pending"


# --------------------------------------------------------------------------- local backend


def _run_local(sweep: SweepConfig, todo: list[Member], workers: int, outcome: dict[str, str]) -> None:
    """Run members as worker subprocesses, ``workers`` at a time (a member after its ``init_from``
    source); adds name -> outcome to ``outcome``."""
    spec_dir = Path(sweep.runs_dir) / sweep.experiment / ".sweep"
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(sweep.threads_per_run), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []

    def submit(member: Member) -> tuple[subprocess.Popen, Any]:
        spec = spec_dir / f"{member.name}.json"
        atomic_write_text(spec, json.dumps(member.spec()))
        out = (spec_dir / f"{member.name}.out").open("a")
        cmd = [sys.executable, "-m", "rl4rec.experiments.worker", str(spec)]
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
        return procs[-1], out

    def collect(running: dict):
        time.sleep(0.2)
        for (proc, out), (member, _) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            out.close()
            status = _status(sweep, member)
            if code == 0 and status in ("finished", "stopped"):
                yield (proc, out), None
            else:
                yield (proc, out), (f"exited with {code} (status {status})", f"exit {code}; log: {out.name}")

    try:
        _schedule(sweep, todo, outcome, workers, submit, collect)
    finally:
        for proc in procs:  # the driver itself was interrupted: stop children cleanly (ended ones are skipped)
            proc.terminate()


# --------------------------------------------------------------------------- ray backend


def _run_ray(sweep: SweepConfig, todo: list[Member], workers: int, outcome: dict[str, str]) -> None:
    try:
        import ray
    except ModuleNotFoundError as err:
        raise RuntimeError("backend=ray needs Ray: pip install 'rl4rec[ray]'") from err

    started_here = not ray.is_initialized()
    if started_here:
        if sweep.ray_address:
            ray.init(address=sweep.ray_address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers,
                object_store_memory=sweep.ray_object_store_mb * 1024 * 1024,
                include_dashboard=False,
                log_to_driver=False,
            )

    @ray.remote(num_cpus=sweep.threads_per_run, max_retries=0)
    def run_member(spec: dict[str, Any]) -> str:
        import torch

        from rl4rec.experiments.worker import run_spec

        torch.set_num_threads(spec["config"]["threads"])
        run_spec(spec)
        return "ok"

    def collect(running: dict):
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=1)
        try:
            ray.get(ready[0])
        except Exception as err:  # noqa: BLE001 - any task error is retried, then reported
            yield ready[0], (f"failed ({err})", f"{type(err).__name__}: {err}")
        else:
            yield ready[0], None

    try:  # no limit here: Ray's CPUs bound the parallel runs
        _schedule(sweep, todo, outcome, len(todo), lambda member: run_member.remote(member.spec()), collect)
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------- driver


def _schedule(sweep: SweepConfig, todo: list[Member], outcome: dict[str, str], limit: int, submit, collect) -> None:
    """The loop of both backends: start each member with ``submit(member) -> key`` once its
    ``init_from`` source is done, ``limit`` at a time; ``collect(running)`` yields ``(key, failure)``
    for the runs that ended, ``failure`` ``None`` or ``(why, outcome)``. A failed run is launched
    again up to ``max_retries`` times, then reported. Adds name -> outcome to ``outcome``."""
    from rl4rec.progress import track

    queue, running = [(m, 0) for m in todo], {}
    done_iter = iter(track(range(len(todo)), desc=f"sweep {sweep.experiment}", unit="run"))
    while queue or running:
        for member, attempt in list(queue):
            ready = _ready(member, outcome)
            if ready is None:
                queue.remove((member, attempt))
                outcome[member.name] = f"failed (its init_from run {member.after} did not finish)"
                next(done_iter, None)
            elif ready and len(running) < limit:
                queue.remove((member, attempt))
                running[submit(member)] = (member, attempt)
        for key, failure in collect(running):
            member, attempt = running.pop(key)
            if failure is None:
                outcome[member.name] = _status(sweep, member)
                next(done_iter, None)
            elif attempt < sweep.max_retries:
                log.warning("run %s %s; retry %d/%d", member.name, failure[0], attempt + 1, sweep.max_retries)
                queue.append((member, attempt + 1))
            else:
                outcome[member.name] = f"failed ({failure[1]})"
                log.error("run %s failed after %d attempt(s)", member.name, attempt + 1)
                next(done_iter, None)


def _exit_on_signal(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)


def run_sweep(sweep: SweepConfig, base_dir: Path = Path(".")) -> dict[str, str]:
    """Run what is missing; returns run name -> outcome (finished / stopped / skipped / failed ...)."""
    members = expand(sweep, base_dir)
    exp_dir = Path(sweep.runs_dir) / sweep.experiment
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs = [{"name": m.name, "method": m.method, "task": m.task, "point": m.point, "seed": m.seed} for m in members]
    atomic_write_text(exp_dir / "sweep.json", json.dumps({"sweep": to_dict(sweep), "runs": runs}, indent=2))
    outcome = {m.name: "skipped (finished)" for m in members if _status(sweep, m) == "finished"}
    todo = [m for m in members if m.name not in outcome]
    workers = sweep.workers or (os.cpu_count() or 1)
    log.info(
        "sweep %s: %d runs, %d finished, %d to run on %s (%d workers)",
        sweep.experiment, len(members), len(outcome), len(todo), sweep.backend, workers,
    )
    if todo:
        runner = _run_local if sweep.backend == "local" else _run_ray
        # SIGTERM to the driver unwinds it like Ctrl-C, so its workers are stopped (they save 'last'), not orphaned
        previous = signal.signal(signal.SIGTERM, _exit_on_signal) if threading.current_thread() is threading.main_thread() else None
        try:
            runner(sweep, todo, workers, outcome)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    failed = [n for n, o in outcome.items() if o.startswith("failed")]
    if failed:
        log.error("%d run(s) failed: %s", len(failed), ", ".join(failed))
    return outcome
