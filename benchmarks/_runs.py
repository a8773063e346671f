"""Shared by the benchmark scripts: reuse a finished run's results or train it afresh."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl4rec.naming import run_name


def reuse_or_train(cfg: Any, train: Callable[[Any], dict | None], force: bool) -> dict:
    """``test_results.json`` of the run if it exists (unless ``force``), else a fresh training."""
    run_dir = Path(cfg.runs_dir) / cfg.experiment / run_name(cfg)
    result_file = run_dir / "test_results.json"
    if result_file.exists() and not force:
        print(f"  reuse {run_dir}", flush=True)
        return json.loads(result_file.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = train(cfg)
    if result is None:
        raise RuntimeError(f"run {run_dir} was stopped before it finished")
    return result


def fmt_ci(d: dict) -> str:
    """``mean ± half-width`` of a ``{"mean", "ci95"}`` cell (the mean alone when the CI is undefined)."""
    return f"{d['mean']:.4f} ± {d['ci95']:.4f}" if d["ci95"] == d["ci95"] else f"{d['mean']:.4f}"


def dataset_seed_parser(doc: str, datasets: list[str]):
    """The options of a script that trains per dataset and seed: ``--data-dir``, ``--runs-dir``,
    ``--datasets``, ``--seeds`` (0 1 2), ``--force`` (retrain finished runs); add more, then parse."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--datasets", nargs="*", default=datasets)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--force", action="store_true")
    return ap


def sweep_args(doc: str, experiment: str, out: Path, extra: Callable[[Any], None] | None = None):
    """The options of a script that tabulates a finished sweep: ``--runs-dir``, ``--experiment``,
    ``--out`` (and what ``extra(parser)`` adds); the parsed arguments."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--experiment", default=experiment)
    ap.add_argument("--out", default=str(out))
    if extra is not None:
        extra(ap)
    return ap.parse_args()
