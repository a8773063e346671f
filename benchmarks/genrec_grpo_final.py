"""The GRPO study's winner against its SFT start over 6 seeds, on the Industrial test file.

    rl4rec sweep configs/genrec/study/grpo_study.yaml workers=2     # seeds 0-2: every arm (the choice)
    rl4rec sweep configs/genrec/study/grpo_final.yaml workers=2     # seeds 3-5: SFT + the winner only
    python benchmarks/genrec_grpo_final.py                         # -> benchmarks/results/genrec_grpo_final.json

The arm (the method of ``grpo_final.yaml`` besides SFT) is the one the study chose on validation
NDCG@10 over seeds 0-2 (``chosen_on_validation`` of ``genrec_grpo_study.json``); seeds 3-5 took no part
in choosing it. Every SFT and GRPO run is
tested again here with 50 beams (``rl4rec genrec eval RUN split=test beams=50``, reused when its
``eval/test-b50-best`` folder exists), so HR/NDCG reach K = 50. Paired t-tests over seeds (all six, and
the three fresh ones alone), and per seed a paired t-test over test rows of the per-row NDCG@10.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import torch
import yaml

from rl4rec.experiments.report import collect
from rl4rec.metrics.stats import mean_ci, paired_ttest

ROOT = Path(__file__).resolve().parents[1]
KS = (1, 5, 10, 20, 50)
CHOOSING_SEEDS = (0, 1, 2)


def _args():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--study", default="genrec-grpo-study")
    ap.add_argument("--final", default="genrec-grpo-final")
    ap.add_argument("--study-file", default="grpo_study.yaml", help="the study's sweep file under configs/genrec/study/ (for the commands shown)")
    ap.add_argument("--final-file", default="grpo_final.yaml", help="the confirmation's sweep file under configs/genrec/study/")
    ap.add_argument("--arm", default="", help="the arm (default: the method of the final sweep file besides SFT)")
    ap.add_argument("--beams", type=int, default=50)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "genrec_grpo_final.json"))
    return ap.parse_args()


def _test_eval(run_dir: Path, beams: int, runs_dir: str) -> tuple[dict, list[int | None]]:
    """Metrics and per-row ranks (None: not in the beams) of the run's best model on the test file."""
    out = run_dir / "eval" / f"test-b{beams}-best"
    if not (out / "results.json").exists():
        from rl4rec.genrec.evaluate import evaluate_run

        evaluate_run(str(run_dir), split="test", beams=beams, runs_dir=runs_dir, progress=False, threads=1)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    ranks = [json.loads(line)["rank"] for line in (out / "predictions.jsonl").read_text().splitlines() if line]
    return metrics, ranks


def _row_ndcg(ranks: list[int | None], k: int = 10) -> list[float]:
    return [1.0 / math.log2(r + 2) if r is not None and r < k else 0.0 for r in ranks]


def _summary(values: list[float]) -> dict:
    ci = mean_ci(values)
    return {"mean": ci.mean, "ci95": ci.half_width if math.isfinite(ci.half_width) else None}


def main() -> None:
    args = _args()
    arm = args.arm or next(m for m in yaml.safe_load((ROOT / "configs" / "genrec" / "study" / args.final_file).read_text())["methods"] if m != "SFT")
    runs: dict[str, dict[int, object]] = {"SFT": {}, arm: {}}
    for exp in (args.study, args.final):
        exp_dir = Path(args.runs_dir) / exp
        if not exp_dir.exists():
            continue
        for r in collect(exp_dir)[0]:
            if r.status == "finished" and r.method in runs:
                runs[r.method].setdefault(r.seed, (exp_dir / r.name, r))
    seeds = sorted(set(runs["SFT"]) & set(runs[arm]))
    per_seed: dict[str, dict[str, list[float]]] = {"SFT": {}, arm: {}}
    row_tests, valid, best_steps = [], {"SFT": [], arm: []}, []
    for seed in seeds:
        ranks = {}
        for method in ("SFT", arm):
            run_dir, rec = runs[method][seed]
            metrics, ranks[method] = _test_eval(run_dir, args.beams, args.runs_dir)
            for k in KS:
                for name in ("hr", "ndcg"):
                    per_seed[method].setdefault(f"{name}@{k}", []).append(metrics[f"{name}@{k}"])
            valid[method].append(rec.results.get("best_valid.ndcg@10", float("nan")))
            if method == arm:
                best_steps.append(int(rec.results.get("best_step", -1)))  # 0: validation never beat the SFT start
        a, b = _row_ndcg(ranks[arm]), _row_ndcg(ranks["SFT"])
        t, p = paired_ttest(a, b)
        row_tests.append({"seed": seed, "rows": len(a), "ndcg@10 diff": sum(a) / len(a) - sum(b) / len(b), "t": t, "p": p,
                          "rows_better": sum(x > y for x, y in zip(a, b, strict=True)), "rows_worse": sum(x < y for x, y in zip(a, b, strict=True))})
    fresh = [i for i, s in enumerate(seeds) if s not in CHOOSING_SEEDS]
    tests = {}
    for key in per_seed[arm]:
        g, s = per_seed[arm][key], per_seed["SFT"][key]
        t, p = paired_ttest(g, s) if len(seeds) > 1 else (float("nan"), float("nan"))
        tf, pf = paired_ttest([g[i] for i in fresh], [s[i] for i in fresh]) if len(fresh) > 1 else (float("nan"), float("nan"))
        tests[key] = {"SFT": _summary(s), arm: _summary(g), "diff": sum(x - y for x, y in zip(g, s, strict=True)) / len(g),
                      "t": t, "p": p, "fresh_seeds_p": pf, "fresh_seeds_t": tf}
    result = {
        "claim": f"'{arm}' (chosen on validation NDCG@10 over seeds {list(CHOOSING_SEEDS)}) against its SFT start on the "
                 f"Industrial_and_Scientific test file, {args.beams}-beam constrained search, paired over seeds",
        "commands": [f"rl4rec sweep configs/genrec/study/{args.study_file}", f"rl4rec sweep configs/genrec/study/{args.final_file}",
                     "python benchmarks/genrec_grpo_final.py" + ("" if args.final_file == "grpo_final.yaml" else
                     f" --study {args.study} --final {args.final} --study-file {args.study_file} --final-file {args.final_file} --out {args.out}")],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "arm": arm,
        "seeds": seeds,
        "choosing_seeds": [s for s in seeds if s in CHOOSING_SEEDS],
        "fresh_seeds": [seeds[i] for i in fresh],
        "significant": bool(tests.get("ndcg@10", {}).get("p", 1.0) < 0.05 and tests["ndcg@10"]["diff"] > 0) if tests else False,
        # one row per metric: means ± CI over seeds, the paired difference, p over all seeds and over the fresh ones
        "rows": [{"metric": key, "SFT": t["SFT"], arm: t[arm], "diff": t["diff"], "paired p": t["p"], "paired p, fresh seeds": t["fresh_seeds_p"]}
                 for key, t in tests.items()],
        "per_seed": per_seed,  # the per-seed lists, in the order of "seeds", so every test can be recomputed
        "best_valid.ndcg@10": valid,
        "best_step": best_steps,
        "raw": {"paired_over_seeds": tests, "per_row_ndcg@10": row_tests},
        "notes": [f"seed {r['seed']}: per-row NDCG@10 {r['ndcg@10 diff']:+.4f} over {r['rows']} rows, paired t = {r['t']:.2f}, "
                  f"p = {r['p']:.3f}; {r['rows_better']} rows better, {r['rows_worse']} worse" for r in row_tests],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    nd = tests.get("ndcg@10", {})
    print(f"wrote {args.out}: {arm} vs SFT over seeds {seeds}: NDCG@10 diff {nd.get('diff', float('nan')):+.4f}, p = {nd.get('p', float('nan')):.3f}")


if __name__ == "__main__":
    main()
