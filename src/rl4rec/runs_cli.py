"""``rl4rec runs list|show|stop`` and ``rl4rec config`` (print every key of a config class)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path


def _fmt_metric(run: dict) -> str:
    key = (run.get("meta") or {}).get("key_metric")
    metrics = run.get("last_metrics") or {}
    if key and key in metrics and metrics[key] is not None:
        return f"{key}={metrics[key]:.4g}"
    step = metrics.get("step")
    return f"step={step}" if step is not None else ""


def _cmd_list(args: argparse.Namespace) -> int:
    from rl4rec.runs import list_runs

    runs = list_runs(Path(args.runs_dir), args.experiment)
    if args.json:
        print(json.dumps([{k: str(v) if isinstance(v, Path) else v for k, v in r.items()} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs under {args.runs_dir}" + (f"/{args.experiment}" if args.experiment else ""))
        return 0
    width = max(len(f"{r['experiment']}/{r['name']}") for r in runs)
    for r in runs:
        print(f"{(r['experiment'] + '/' + r['name']).ljust(width)}  {r['status']:<9} {_fmt_metric(r)}")
    print("total: " + ", ".join(f"{n} {s}" for s, n in sorted(Counter(r["status"] for r in runs).items())))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from rl4rec.runs import find_run, read_status
    from rl4rec.tracking import read_metrics

    run_dir = find_run(Path(args.runs_dir), args.name)
    print(f"# {run_dir}")
    print(f"status: {read_status(run_dir)['status']}")
    print((run_dir / "config.yaml").read_text().rstrip())
    last = {k: v for r in read_metrics(run_dir / "metrics.jsonl") for k, v in r.items() if k != "time"}
    print("last metrics:")
    for key, value in last.items():
        print(f"  {key}: {value}")
    for result in sorted(run_dir.glob("*results*.json")):
        print(f"{result.name}: {result.read_text().strip()}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from rl4rec.runs import find_run, list_runs, read_status

    if args.experiment:
        targets = [r["dir"] for r in list_runs(Path(args.runs_dir), args.experiment)]
    elif args.name:
        targets = [find_run(Path(args.runs_dir), args.name)]
    else:
        print("rl4rec runs stop: give a run NAME or --experiment E", file=sys.stderr)
        return 2
    stopped = 0
    for run_dir in targets:
        status = read_status(run_dir)
        if status["status"] != "running":
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(status["pid"]), signal.SIGTERM)  # the run saves 'last' and exits cleanly
            stopped += 1
            print(f"stopping {run_dir}")
    print(f"sent stop to {stopped} run(s)")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import importlib

    from rl4rec.config import describe
    from rl4rec.registry import PIPELINES

    by_name = {p.name: p for p in PIPELINES} | {" ".join(p.command): p for p in PIPELINES}
    if args.cls in by_name:
        cls = by_name[args.cls].config_class()
    else:
        module, _, name = args.cls.rpartition(".")
        if not module:
            raise FileNotFoundError(f"{args.cls!r} is neither a pipeline ({', '.join(p.name for p in PIPELINES)}) nor a dotted class path")
        cls = getattr(importlib.import_module(module), name)
    for key, tp, default, help_text in describe(cls):
        print(f"{key:<34} {tp:<22} {default:<16} {help_text}")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict | None = None) -> None:  # noqa: ARG001 (top-level commands)
    runs = sub.add_parser("runs", help="list, show and stop runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION")

    p = runs_sub.add_parser("list", help="runs with status (running/finished/failed/killed/stopped) and key metric")
    p.add_argument("--experiment", "-e", default=None)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_list)

    p = runs_sub.add_parser("show", help="config and last metrics of one run")
    p.add_argument("name", help="run name, EXPERIMENT/NAME or a run directory")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_cmd_show)

    p = runs_sub.add_parser("stop", help="stop runs cleanly (they save 'last' first)")
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--experiment", "-e", default=None)
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("config", help="print every key, type, default and help of a config class")
    p.add_argument("cls", help="a pipeline (genrec.sft, 'slate train', ...) or a dotted class path, e.g. rl4rec.smoke.SmokeConfig")
    p.set_defaults(func=_cmd_config)
