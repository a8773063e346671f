"""``rl4rec sweep FILE`` and ``rl4rec report EXPERIMENT``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rl4rec.experiments.report import build_report
    from rl4rec.experiments.sweep import expand, load_sweep, run_sweep

    sweep, base_dir = load_sweep(args.file, args.overrides)
    if args.dry_run:
        for m in expand(sweep, base_dir):
            print(f"{m.method:<20} {m.name}")
        return 0
    outcome = run_sweep(sweep, base_dir)
    failed = {n: o for n, o in outcome.items() if o.startswith("failed")}
    counts = Counter(o.split(" ")[0] for o in outcome.values())
    print(f"sweep {sweep.experiment}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for name, o in failed.items():
        print(f"  {name}: {o}")
    if not args.no_report:
        md, html = build_report(Path(sweep.runs_dir), sweep.experiment)
        print(f"report: {md} and {html}")
    return 1 if failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rl4rec.experiments.report import build_report

    metrics = args.metrics.split(",") if args.metrics else None
    md, html = build_report(Path(args.runs_dir), args.experiment, metrics, baseline=args.baseline, out_dir=args.out)
    print(md.read_text())
    print(f"report: {md} and {html}")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict | None = None) -> None:  # noqa: ARG001 (top-level commands)
    p = sub.add_parser("sweep", help="run a sweep file (methods x grid x seeds) locally or on Ray; resumable")
    p.add_argument("file", help="sweep YAML (see rl4rec config rl4rec.experiments.sweep.SweepConfig)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the sweep file, e.g. backend=ray workers=4")
    p.add_argument("--dry-run", action="store_true", help="list the runs without starting them")
    p.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="Markdown + HTML report of an experiment: CIs, Welch tests, curves, parameters")
    p.add_argument("experiment", nargs="+", help="one experiment, or several: one section each")
    p.add_argument("--out", default=None, help="report folder (default: <runs_dir>/<first experiment>/report)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--metrics", default=None, help="comma-separated result keys (default: all numeric results)")
    p.add_argument("--baseline", default=None, help="another experiment: compare each (method, column) cell with it (Welch; paired over seeds when they match)")
    p.set_defaults(func=_cmd_report)
