"""GRPO from the SFT model vs the SFT model itself, SASRec and Pop on the same split: test HR@K /
NDCG@K (mean ± 95% t-CI over seeds), and a paired t-test of GRPO vs its own SFT start (NDCG@10).

Claim checked: on the honest R1 train rebuild of Industrial_and_Scientific, GRPO with the ranking
reward (rule + ndcg_rule, spec §7.4), and with a CF reward from SASRec added, improves the tiny
SFT model of ``benchmarks/genrec_sft.py`` (one GRPO run per SFT seed, started from that seed's
best SFT model). Numbers are NOT the paper's (no full train split, no pretrained backbone).

    python benchmarks/genrec_grpo.py --data-dir ../shared/data --seeds 0 1 2

Every training is an ordinary run under ``runs/``: the SFT runs of ``benchmarks/genrec_sft.py``
(trained if missing), SASRec runs of ``configs/genrec/baselines.yaml`` (the cf reward's scorer,
trained if missing), and ``rl4rec genrec grpo --config configs/genrec/grpo_industrial.yaml
init_from=<SFT run> seed=S [variant overrides]``; finished runs are reused unless ``--force``.
Writes ``benchmarks/results/genrec_grpo.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from scipy import stats

from _runs import fmt_ci as fmt  # noqa: E402
from _runs import reuse_or_train  # noqa: E402  (benchmarks/ is the script's directory)
from rl4rec.config import load_config
from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline
from rl4rec.genrec.grpo.config import GRPOConfig
from rl4rec.genrec.grpo.trainer import train_grpo
from rl4rec.genrec.sft import SFTConfig, train_sft
from rl4rec.metrics.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]
DATASET = "Industrial_and_Scientific"
SFT_CONFIG = ROOT / "configs" / "genrec" / "sft_industrial.yaml"
GRPO_CONFIG = ROOT / "configs" / "genrec" / "grpo_industrial.yaml"
BASELINES = ROOT / "configs" / "genrec" / "baselines.yaml"
#: name -> GRPO overrides (the cf variant's scorer is the same seed's SASRec run)
VARIANTS = {
    "GRPO rule+ranking": [],
    "GRPO rule+ranking+cf": ["rewards={rule: 1.0, ndcg_rule: 1.0, cf: 0.1}"],
}
METRICS = ["hr@1", "hr@3", "hr@5", "hr@10", "hr@20", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@20"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--force", action="store_true", help="retrain the GRPO runs (SFT and SASRec runs are always reused)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = [f"data_dir={args.data_dir}"] if args.data_dir else []
    common = [f"runs_dir={args.runs_dir}"]
    results: dict[str, list[dict]] = {"SFT (start)": [], "sasrec": []}
    for seed in args.seeds:
        print(f"{DATASET} seed {seed}: SFT, SASRec", flush=True)
        sft = reuse_or_train(load_config(SFTConfig, SFT_CONFIG, [f"seed={seed}", *common, *data]), train_sft, False)
        sas = reuse_or_train(load_config(BaselineConfig, BASELINES, ["model=sasrec", f"dataset={DATASET}", f"seed={seed}", *common, *data]), train_baseline, False)
        results["SFT (start)"].append(sft)
        results["sasrec"].append(sas)
        for name in args.variants:
            print(f"{DATASET} seed {seed}: {name}", flush=True)
            extra = list(VARIANTS[name]) + ([f"cf_model={sas['run_dir']}"] if any("cf" in o for o in VARIANTS[name]) else [])
            cfg = load_config(GRPOConfig, GRPO_CONFIG, [f"init_from={sft['run_dir']}", f"seed={seed}", *common, *extra])
            results.setdefault(name, []).append(reuse_or_train(cfg, train_grpo, args.force))

    rows, table = [], ["| model | seeds | " + " | ".join(m.upper() for m in METRICS) + " | best step | train time (s) |", "|" + "---|" * (len(METRICS) + 4)]
    for name, runs in results.items():
        row = {"model": name, "seeds": args.seeds, "test_rows": runs[0]["rows"]["test"] if "rows" in runs[0] else None}
        for m in METRICS:
            vals = [r["test"].get(m) for r in runs]
            if None in vals:
                continue
            ci = mean_ci(vals)
            row[m] = {"mean": ci.mean, "ci95": ci.half_width, "values": vals}
        row["best_step"] = [r.get("best_step", r.get("best_epoch")) for r in runs]
        row["train_s"] = mean_ci([r["train_s"] for r in runs]).mean
        if name.startswith("GRPO"):
            row["start_run"] = [r["init_from"] for r in runs]
            a, b = [r["test"]["ndcg@10"] for r in runs], [r["test"]["ndcg@10"] for r in results["SFT (start)"]]
            t = stats.ttest_rel(a, b) if len(a) > 1 else None
            row["paired_vs_sft_ndcg@10"] = {"diff": float(sum(x - y for x, y in zip(a, b, strict=True)) / len(a)),
                                            "t": float(t.statistic) if t else None, "p": float(t.pvalue) if t else None}
        rows.append(row)
        cells = [fmt(row[m]) if m in row else "–" for m in METRICS]
        table.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {row['best_step']} | {row['train_s']:.0f} |")
    pop = json.loads((ROOT / "benchmarks" / "results" / "genrec_baselines.json").read_text())
    for b in pop["rows"]:
        if b["dataset"] == DATASET and b["model"] == "pop" and b["train_rows"] == results["SFT (start)"][0]["rows"]["train"]:
            table.append(f"| pop (part 1) | {len(b['seeds'])} | " + " | ".join(fmt(b[m]) if m in b else "–" for m in METRICS) + " | – | – |")
    notes = []
    for row in rows:
        if "paired_vs_sft_ndcg@10" not in row:
            continue
        p = row["paired_vs_sft_ndcg@10"]
        if all(s == 0 for s in row["best_step"]):
            notes.append(f"{row['model']}: validation never beat the SFT model, so 'best' is the SFT model (step 0) on every seed.")
        elif p["p"] is not None:
            notes.append(f"{row['model']} vs its SFT start, NDCG@10: mean difference {p['diff']:+.4f}, paired t = {p['t']:.2f}, p = {p['p']:.3g}.")
    out = {
        "claim": "GRPO (ranking reward; + SASRec CF reward) from the tiny SFT model vs that model, SASRec and Pop on the R1 split of Industrial_and_Scientific",
        "command": "python benchmarks/genrec_grpo.py --data-dir ../shared/data --seeds " + " ".join(map(str, args.seeds)),
        "configs": {"sft": str(SFT_CONFIG.relative_to(ROOT)), "grpo": str(GRPO_CONFIG.relative_to(ROOT)), "baselines": str(BASELINES.relative_to(ROOT))},
        "variants": {k: VARIANTS[k] for k in args.variants},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "threads": 1},
        "rows": rows,
        "notes": notes,
    }
    res_dir = ROOT / "benchmarks" / "results"
    (res_dir / "genrec_grpo.json").write_text(json.dumps(out, indent=2) + "\n")
    note = ("\nTest file (4,533 rows), 20-beam constrained search (SFT/GRPO) / full ranking (SASRec, Pop); mean ± 95% t-CI over seeds; "
            "one GRPO run per SFT seed; R1 train rebuild; one CPU thread. Train time = optimizer steps only.\n\n" + "\n".join(notes) + "\n")
    (res_dir / "genrec_grpo.md").write_text("\n".join(table) + "\n" + note)
    print("\n".join(table))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
