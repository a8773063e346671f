"""Free-text recommender grounded by retrieval (spec §10): SFT vs GRPO with the NDCG reward, beside the
SID-based models and SASRec on the same split: test HR/NDCG@K (mean ± 95% t-CI over seeds).

Claim checked: on the R1 train rebuild of Industrial_and_Scientific, a tiny LM trained from scratch to
write the next item's title (``seq_title2title``), grounded by MiniLM + cosine retrieval over the whole
catalog, and then GRPO with the NDCG of the target's retrieval rank as the reward (cutoff K = 100, 4 sampled titles per prompt).

    python benchmarks/genrec_grpo_text.py --data-dir ../shared/data --seeds 0 1 2

Runs: ``rl4rec genrec sft --config configs/genrec/sft_text_industrial.yaml seed=S`` and ``rl4rec genrec
grpo-text --config configs/genrec/grpo_text_industrial.yaml init_from=<that run> seed=S`` under ``runs/``;
finished runs are reused unless ``--force``. The SID-model rows come from
``benchmarks/results/genrec_grpo.json`` (same split, same test rows). Writes
``benchmarks/results/genrec_grpo_text.json`` and ``.md``.
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
from rl4rec.genrec.grpo.config import TextGRPOConfig
from rl4rec.genrec.grpo.trainer import train_grpo
from rl4rec.genrec.sft import SFTConfig, train_sft
from rl4rec.metrics.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]
SFT_CONFIG = ROOT / "configs" / "genrec" / "sft_text_industrial.yaml"
GRPO_CONFIG = ROOT / "configs" / "genrec" / "grpo_text_industrial.yaml"
METRICS = ["hr@1", "hr@3", "hr@5", "hr@10", "hr@20", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@20"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--force", action="store_true", help="retrain the GRPO runs (SFT runs are reused)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = [f"data_dir={args.data_dir}"] if args.data_dir else []
    sft_runs, grpo_runs = [], []
    for seed in args.seeds:
        print(f"seed {seed}: text SFT", flush=True)
        sft = reuse_or_train(load_config(SFTConfig, SFT_CONFIG, [f"seed={seed}", f"runs_dir={args.runs_dir}", *data]), train_sft, False)
        print(f"seed {seed}: text GRPO", flush=True)
        cfg = load_config(TextGRPOConfig, GRPO_CONFIG, [f"init_from={sft['run_dir']}", f"seed={seed}", f"runs_dir={args.runs_dir}"])
        grpo_runs.append(reuse_or_train(cfg, train_grpo, args.force))
        sft_runs.append(sft)
    rows, table = [], ["| model | seeds | " + " | ".join(m.upper() for m in METRICS) + " | best step | train time (s) |", "|" + "---|" * (len(METRICS) + 4)]
    for name, runs in (("SFT free text", sft_runs), ("GRPO free text (NDCG reward, K = 100)", grpo_runs)):
        row = {"model": name, "seeds": args.seeds}
        for m in METRICS:
            vals = [r["test"][m] for r in runs]
            ci = mean_ci(vals)
            row[m] = {"mean": ci.mean, "ci95": ci.half_width, "values": vals}
        row["best_step"] = [r["best_step"] for r in runs]
        row["train_s"] = mean_ci([r["train_s"] for r in runs]).mean
        rows.append(row)
        table.append(f"| {name} | {len(runs)} | " + " | ".join(fmt(row[m]) for m in METRICS) + f" | {row['best_step']} | {row['train_s']:.0f} |")
    a, b = [r["test"]["ndcg@10"] for r in grpo_runs], [r["test"]["ndcg@10"] for r in sft_runs]
    t = stats.ttest_rel(a, b) if len(a) > 1 and a != b else None
    notes = [f"GRPO free text vs its SFT start, NDCG@10: mean difference {sum(x - y for x, y in zip(a, b, strict=True)) / len(a):+.4f}"
             + (f", paired t = {t.statistic:.2f}, p = {t.pvalue:.3g}." if t is not None else " (identical models: validation never improved).")]
    sid = ROOT / "benchmarks" / "results" / "genrec_grpo.json"
    if sid.exists():
        for r in json.loads(sid.read_text())["rows"]:
            if r["model"] in ("SFT (start)", "GRPO rule+ranking", "sasrec"):
                label = {"SFT (start)": "SID model: SFT", "GRPO rule+ranking": "SID model: GRPO rule+ranking", "sasrec": "SASRec"}[r["model"]]
                table.append(f"| {label} | {len(r['seeds'])} | " + " | ".join(fmt(r[m]) if m in r else "–" for m in METRICS) + " | – | – |")
    out = {
        "claim": "free-text title generation grounded by MiniLM retrieval: SFT vs GRPO with the retrieval NDCG reward (K = 100), Industrial R1 split",
        "command": "python benchmarks/genrec_grpo_text.py --data-dir ../shared/data --seeds " + " ".join(map(str, args.seeds)),
        "configs": {"sft": str(SFT_CONFIG.relative_to(ROOT)), "grpo": str(GRPO_CONFIG.relative_to(ROOT))},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "threads": 1},
        "rows": rows,
        "notes": notes,
    }
    res = ROOT / "benchmarks" / "results"
    (res / "genrec_grpo_text.json").write_text(json.dumps(out, indent=2) + "\n")
    note = ("\nTest file (4,533 rows). Free text: the greedy title is embedded (MiniLM) and the whole catalog ranked by cosine; "
            "SID models: 20-beam constrained search; SASRec: full ranking. Mean ± 95% t-CI over seeds; one CPU thread.\n\n" + "\n".join(notes) + "\n")
    (res / "genrec_grpo_text.md").write_text("\n".join(table) + "\n" + note)
    print("\n".join(table))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
