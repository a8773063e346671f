"""The latent family's result formatting and ``rl4rec genrec latent-eval`` (re-testing a saved run).

``latent-sft``/``latent-grpo`` are registry pipelines; their ``--smoke`` is :mod:`rl4rec.genrec.smoke`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "format_results", "evaluate_latent_run"]

def _fmt(m: dict[str, Any], ks=(1, 3, 5, 10)) -> str:
    return " ".join(f"{name}@{k}={m[f'{name}@{k}']:.4f}±{m[f'{name}@{k}_ci95']:.4f}" for name in ("hr", "ndcg") for k in ks if f"{name}@{k}" in m)


def format_results(result: dict[str, Any]) -> str:
    lines = [f"{result['dataset']}: {result['steps']} steps, best step {result['best_step']} (valid {result['best_valid']}), train {result['train_s']:.0f}s, wall {result['wall_s']:.0f}s"]
    if "test" in result:
        t = result["test"]
        lines.append(f"test ({t['rows']} rows, {t['invalid']} invalid, {t['ambiguous_targets']:.1%} targets with a shared title): {_fmt(t)}")
        lines.append(f"MostPop on the same rows: {_fmt(result['mostpop'])}")
        for g, v in t.get("popularity_groups", {}).items():
            lines.append(f"  {g} ({v['size']} rows): {_fmt(v)}")
    lines.append(f"results: {result['run_dir']}/test_results.json")
    return "\n".join(lines)


def evaluate_latent_run(run: str, which: str = "best", overrides: list[str] | tuple[str, ...] = (), runs_dir: str = "runs") -> dict[str, Any]:
    """Re-test a latent SFT or GRPO run's saved model (``eval.*`` overrides, e.g.
    ``eval.group_by=target eval.test_rows=1000``); writes ``eval_<which>.json`` + ranks."""
    import json
    from dataclasses import replace

    from rl4rec.config import apply_overrides, to_dict
    from rl4rec.genrec.artifacts import sft_run_of
    from rl4rec.genrec.latent.grpo import LatentGRPOConfig
    from rl4rec.genrec.latent.sft import LatentEvalConfig, LatentSFTConfig, load_latent_data, test_run
    from rl4rec.runs import atomic_write_text, config_of, find_run

    run_dir = find_run(Path(runs_dir), run)
    sft_dir = sft_run_of(run_dir)  # a GRPO run names its SFT run in init_run.json
    sft_cfg = config_of(LatentSFTConfig, sft_dir)
    own = to_dict(sft_cfg.eval if sft_dir == run_dir else config_of(LatentGRPOConfig, run_dir).eval)  # the run's own eval settings
    ev = apply_overrides(LatentEvalConfig, own, [o.removeprefix("eval.") for o in overrides])
    view = replace(sft_cfg, eval=ev, progress=True)  # what test_run reads: these eval settings, the SFT run's device
    result = {"run_dir": str(run_dir), "which": which, "eval": to_dict(ev), **test_run(run_dir, view, load_latent_data(sft_cfg), which, ranks_file=f"eval_{which}_ranks.npy")}
    atomic_write_text(run_dir / f"eval_{which}.json", json.dumps(result, indent=2))
    return result


def format_eval(result: dict[str, Any]) -> str:
    t = result["test"]
    lines = [f"{result['run_dir']} ({result['which']}): {t['rows']} test rows, {t['invalid']} invalid, {t['ambiguous_targets']:.1%} targets with a shared title", f"  model : {_fmt(t)}", f"  MostPop: {_fmt(result['mostpop'])}"]
    lines += [f"  {g} ({v['size']} rows): {_fmt(v)}" for g, v in t.get("popularity_groups", {}).items()]
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    print(format_eval(evaluate_latent_run(args.run, args.which, args.overrides, args.runs_dir)))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:  # noqa: ARG001
    """``rl4rec genrec latent-eval``: not a registry pipeline, since its ``eval.*`` overrides apply on
    top of the run's own evaluation settings rather than a config's defaults."""
    p = groups["genrec"].add_parser("latent-eval", help="re-test a latent SFT/GRPO run's saved model (title metrics, popularity groups, MostPop)")
    p.add_argument("run", help="run folder, EXPERIMENT/NAME or unique run name")
    p.add_argument("--which", default="best", choices=["best", "last"])
    p.add_argument("--runs-dir", dest="runs_dir", default="runs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="eval.* overrides, e.g. eval.group_by=target eval.test_rows=1000")
    p.set_defaults(func=_cmd_eval)
