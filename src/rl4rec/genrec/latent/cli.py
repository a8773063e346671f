"""``rl4rec genrec latent-sft | latent-grpo [X.yaml] [--smoke] [key=value ...]``.

``--smoke`` runs the whole family on a synthetic catalogue in about a minute: 150 SFT steps with
the latent (the synthetic train file), then 6 noise-GRPO steps (the quickstart's stage).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register_eval", "run_smoke", "format_results", "evaluate_latent_run", "SMOKE_SFT", "SMOKE_GRPO"]

SMOKE_SFT = [
    "experiment=latent-smoke", "run_name=sft", "train_recipe=file", "max_steps=150", "eval_every=75", "batch_size=16", "lr=3e-3",
    "warmup_steps=10", "eval.rows=64", "eval.beams=5", "select_metric=ndcg@5", "eval.batch_size=32", "threads=1", "tokenizer.vocab_size=400",
]
SMOKE_GRPO = [
    "experiment=latent-smoke", "run_name=grpo", "max_steps=6", "prompts_per_step=8", "latent_rl.group_size=4",
    "eval.rows=64", "eval.beams=5", "select_metric=ndcg@5", "threads=1", "lr=1e-3", "warmup_steps=1",
]


def run_smoke(runs_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = False) -> dict[str, Any] | None:
    """Synthetic data -> latent SFT -> noise-GRPO; returns the GRPO results."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset
    from rl4rec.genrec.latent.grpo import LatentGRPOConfig, train_latent_grpo
    from rl4rec.genrec.latent.sft import LatentSFTConfig, train_latent_sft

    runs_dir = Path(runs_dir)
    folder = write_synthetic_dataset(runs_dir / "latent-smoke" / "data")
    common = [f"runs_dir={runs_dir}", "resume=true", f"progress={str(progress).lower()}"]
    sft = train_latent_sft(apply_overrides(LatentSFTConfig, {}, [f"dataset={folder}", *SMOKE_SFT, *common]))
    if sft is None:
        return None
    result = train_latent_grpo(apply_overrides(LatentGRPOConfig, {}, [*SMOKE_GRPO, *common, f"init_from={runs_dir / 'latent-smoke' / 'sft'}", *overrides]))
    if result is not None:
        result["sft_test"] = sft.get("test")
    return result


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

    from rl4rec.config import apply_overrides, to_dict
    from rl4rec.genrec.artifacts import sft_run_of
    from rl4rec.genrec.latent.grpo import EvalView, LatentGRPOConfig
    from rl4rec.genrec.latent.sft import LatentEvalConfig, LatentSFTConfig, load_latent_data, test_run
    from rl4rec.runs import atomic_write_text, config_of, find_run

    run_dir = find_run(Path(runs_dir), run)
    sft_dir = sft_run_of(run_dir)  # a GRPO run names its SFT run in init_run.json
    sft_cfg = config_of(LatentSFTConfig, sft_dir)
    own = to_dict(sft_cfg.eval if sft_dir == run_dir else config_of(LatentGRPOConfig, run_dir).eval)  # the run's own eval settings
    ev = apply_overrides(LatentEvalConfig, own, [o[len("eval."):] if o.startswith("eval.") else o for o in overrides])
    view = EvalView(ev, sft_cfg.max_len, True, sft_cfg.device)
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


def register_eval(gsub: argparse._SubParsersAction) -> None:
    p = gsub.add_parser("latent-eval", help="re-test a latent SFT/GRPO run's saved model (title metrics, popularity groups, MostPop)")
    p.add_argument("run", help="run folder, EXPERIMENT/NAME or unique run name")
    p.add_argument("--which", default="best", choices=["best", "last"])
    p.add_argument("--runs-dir", dest="runs_dir", default="runs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="eval.* overrides, e.g. eval.group_by=target eval.test_rows=1000")
    p.set_defaults(func=_cmd_eval)
