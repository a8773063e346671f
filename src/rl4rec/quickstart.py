"""``rl4rec quickstart``: a few-minute tour of every pipeline that works, ending in a report.

Each stage uses only data the package generates itself (the quickstart must also work where
``../shared/data`` does not exist), writes ordinary runs under ``<runs_dir>/quickstart/`` and
returns rows for the final report. Running it again resumes finished runs instead of redoing them.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Stage = Callable[[Path], list[dict]]


def stage_smoke(runs_dir: Path) -> list[dict]:
    """Foundation: a tiny training run with checkpoints and tracking."""
    from rl4rec.config import apply_overrides
    from rl4rec.smoke import SmokeConfig, train_smoke

    cfg = apply_overrides(SmokeConfig, {}, [f"runs_dir={runs_dir}", "experiment=quickstart", "resume=true"])
    result = train_smoke(cfg) or {}
    return [{"stage": "smoke", "what": "MLP regression, 300 steps", "metric": "eval/mse", "value": result.get("eval/mse")}]


def _stages() -> list[tuple[str, Stage]]:
    """Stages in order, from :data:`rl4rec.registry.QUICKSTART_STAGES`."""
    from rl4rec.registry import QUICKSTART_STAGES, load

    return [(name, load(path)) for name, path in QUICKSTART_STAGES]


def write_report(rows: list[dict], out: Path, timings: dict[str, float]) -> Path:
    lines = ["# rl4rec quickstart report", "", "| stage | what | metric | value |", "|---|---|---|---|"]
    for row in rows:
        value = row.get("value")
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {row['stage']} | {row['what']} | {row['metric']} | {text} |")
    lines += ["", "| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {name} | {secs:.1f} |" for name, secs in timings.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def run_quickstart(runs_dir: Path, only: list[str] | None = None) -> Path:
    rows: list[dict] = []
    timings: dict[str, float] = {}
    for name, stage in _stages():
        if only and name not in only:
            continue
        log.info("quickstart stage: %s", name)
        t0 = time.perf_counter()
        rows.extend(stage(runs_dir))
        timings[name] = time.perf_counter() - t0
    report = write_report(rows, runs_dir / "quickstart" / "REPORT.md", timings)
    from rl4rec.experiments.report import build_report

    metrics = ["eval/mse", "test/return", "test.hr@1", "test.ndcg@10"]
    md, html = build_report(runs_dir, "quickstart", metrics)  # per-run tables, curves and parameters
    print(report.read_text())
    print(f"summary: {report}\nfull report: {md} and {html}")
    return report


def _cmd(args: argparse.Namespace) -> int:
    run_quickstart(Path(args.runs_dir), args.only)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="a few-minute end-to-end tour on generated data, ending in a report")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--only", nargs="*", default=None, help="run only these stages")
    p.set_defaults(func=_cmd)
