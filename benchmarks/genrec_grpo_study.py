"""The GRPO study on Industrial_and_Scientific: every arm of ``configs/genrec/study/grpo_study.yaml``
(or its one-seed pilot) against the SFT model it started from, over the seeds that finished.

    rl4rec sweep configs/genrec/study/grpo_study.yaml workers=2     # or grpo_study_pilot.yaml (seed 0, 4 arms)
    python benchmarks/genrec_grpo_study.py                         # -> benchmarks/results/genrec_grpo_study.json
    rl4rec sweep configs/genrec/study/grpo_study_round2.yaml       # round 2: G=64, mixed beam/sample groups
    python benchmarks/genrec_grpo_study.py --experiment genrec-grpo-study-round2 --out benchmarks/results/genrec_grpo_study_round2.json

Per arm: validation NDCG@10 of the selected checkpoint (``best_valid``; the only number an arm is
chosen by), test HR/NDCG@10/20, the share of beam/sample groups whose rewards do not vary (no
advantage: ``train/zero_adv_groups``, mean over steps), the share of groups holding the target, and
training time. ``vs SFT`` is the paired mean difference of test NDCG@10 against the SFT run of the
same seed. The arm with the highest mean validation NDCG@10 is marked; the test file plays no
part in that choice.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
from pathlib import Path

import torch

from _runs import sweep_args
from rl4rec.experiments.report import collect
from rl4rec.metrics.stats import mean_ci, paired_ttest
from rl4rec.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = {"genrec-grpo-study": "grpo_study", "genrec-grpo-study-round2": "grpo_study_round2"}  # experiment -> its sweep file
ROUNDS = ("genrec-grpo-study", "genrec-grpo-study-round2")  # in order; a round's result file is genrec_grpo_study[_round2].json


def _summary(values: list[float]) -> dict:
    ci = mean_ci(values)
    return {"mean": ci.mean, "ci95": ci.half_width if math.isfinite(ci.half_width) else None, "values": values}


def main() -> None:
    args = sweep_args(__doc__, "genrec-grpo-study", ROOT / "benchmarks" / "results" / "genrec_grpo_study.json")
    exp = Path(args.runs_dir) / args.experiment
    records, manifest = collect(exp)
    done = [r for r in records if r.status == "finished"]
    sft = {r.seed: r for r in done if r.method == "SFT"}
    rows = []
    for method in dict.fromkeys(r.method for r in done):
        runs = sorted((r for r in done if r.method == method), key=lambda r: r.seed)
        row: dict = {"arm": method, "seeds": [r.seed for r in runs]}
        for key in ("best_valid.ndcg@10", "test.ndcg@10", "test.hr@10", "test.hr@20", "test.ndcg@20"):
            vals = [r.results[key] for r in runs if key in r.results]
            if vals:
                row[key] = _summary(vals)
        row["best_step"] = [int(r.results["best_step"]) for r in runs if "best_step" in r.results]  # 0: validation never beat the start
        row["train_s"] = statistics.mean(r.results.get("train_s", float("nan")) for r in runs)
        if method != "SFT":
            traces = [read_metrics(exp / r.name / "metrics.jsonl") for r in runs]
            for key in ("train/zero_adv_groups", "train/group_hit_rate"):
                per_run = [statistics.mean(m[key] for m in t if key in m) for t in traces if any(key in m for m in t)]
                if per_run:
                    row[key] = _summary(per_run)
            paired = [(r.results["test.ndcg@10"], sft[r.seed].results["test.ndcg@10"]) for r in runs if r.seed in sft]
            if paired:
                row["test.ndcg@10 vs SFT"] = statistics.mean(a - b for a, b in paired)
                row["paired p vs SFT"] = paired_ttest([a for a, _ in paired], [b for _, b in paired])[1] if len(paired) > 1 else None
        rows.append(row)
    arms = [r for r in rows if r["arm"] != "SFT" and "best_valid.ndcg@10" in r and len(r["seeds"]) >= len(sft)]
    chosen = max(arms, key=lambda r: r["best_valid.ndcg@10"]["mean"])["arm"] if arms else None
    # a later round competes with the arms of the earlier ones (same seeds, same SFT runs): the overall choice
    earlier = {}
    for name in ROUNDS[: ROUNDS.index(args.experiment)] if args.experiment in ROUNDS else []:
        path = ROOT / "benchmarks" / "results" / f"{name.replace('-', '_')}.json"
        for r in json.loads(path.read_text())["rows"] if path.is_file() else []:
            if r["arm"] != "SFT" and "best_valid.ndcg@10" in r:
                earlier[f"{r['arm']} ({name})"] = r["best_valid.ndcg@10"]["mean"]
    pool = {**earlier, **{r["arm"]: r["best_valid.ndcg@10"]["mean"] for r in arms}}
    overall = max(pool, key=pool.get) if pool else None
    result = {
        "claim": "GRPO arms on Industrial_and_Scientific, each one change from the baseline arm, from the SFT model of the same seed; "
                 "an arm is chosen by validation NDCG@10 only",
        "commands": [f"rl4rec sweep configs/genrec/study/{SWEEP_FILES.get(args.experiment, 'grpo_study')}.yaml" if len(sft) > 1 else
                     "rl4rec sweep configs/genrec/study/grpo_study_pilot.yaml",
                     "python benchmarks/genrec_grpo_study.py" + ("" if args.experiment == "genrec-grpo-study" else f" --experiment {args.experiment} --out {args.out}")],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "seeds_finished": sorted(sft),
        # arms of the sweep file with fewer finished seeds than SFT (stopped or not run yet): not in the choice
        "arms_unfinished": sorted({e["method"] for e in manifest.get("runs", [])} - {r["arm"] for r in rows if len(r["seeds"]) >= len(sft)}),
        "chosen_on_validation": chosen,
        "earlier_rounds_validation": earlier,  # mean validation NDCG@10 of the earlier rounds' arms
        "chosen_on_validation_all_rounds": overall,
        "rows": rows,
        "notes": [f"{len(sft)} seed(s): a pilot, not a result, until every arm has 3 seeds" if len(sft) < 3 else "3 seeds per arm",
                  "vs SFT: paired over seeds on the test file, for the record; the choice uses validation only",
                  "runs that did not finish are left out",
                  "dapo and gspo can only equal the baseline arm here: SID completions all have the same length and one iteration is "
                  "on-policy, so DAPO's token-level mean and GSPO's sequence ratio (1 at the sampling step) give GRPO's gradient"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}: {len(rows)} arms, seeds {sorted(sft)}, chosen on validation: {chosen}")


if __name__ == "__main__":
    main()
