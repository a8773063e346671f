"""SFT on SIDs built from collaborative item embeddings (SASRec's table) vs text SIDs and SASRec itself.

Claim checked (issue #21 item 0, "a start worth improving"): does the tiny SID LM of
``benchmarks/genrec_sft.py`` close its gap to SASRec when its SIDs come from SASRec's item
embeddings instead of item text? Per dataset and seed S:

1. SASRec, ``configs/genrec/baselines.yaml`` with ``seed=S`` (the run of ``genrec_baselines.py``);
2. its item table (rows 0..N-1, in item-id order) quantized by ``rl4rec genrec build-sids
   embeddings=<table.npy> method=rqkmeans dedup=last_level`` (3 levels of 256, the text SIDs' settings);
3. SFT with the dataset's own config (``configs/genrec/sft_<dataset>.yaml``, ``seed=S``), only
   ``sid_index`` changed.

Compared on the test file with the text-SID SFT of ``benchmarks/results/genrec_sft.json`` (same
configs and seeds) and with the SASRec run of step 1, paired over seeds. Writes
``benchmarks/results/genrec_sft_cf_sids.json``.

    python benchmarks/genrec_sft_cf_sids.py --data-dir ../shared/data --seeds 0 1 2
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from _runs import dataset_seed_parser, reuse_or_train  # noqa: E402  (benchmarks/ is the script's directory)
from genrec_sft import CONFIGS as SFT_CONFIGS  # the same SFT configs as the text-SID table
from rl4rec.config import load_config
from rl4rec.genrec.baselines.models import load_model
from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline
from rl4rec.genrec.sft import SFTConfig, train_sft
from rl4rec.genrec.sid.build import SIDBuildConfig, build_sids
from rl4rec.metrics.stats import mean_ci, paired_ttest
from rl4rec.naming import run_name

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "configs" / "genrec" / "baselines.yaml"
METRICS = ["hr@5", "hr@10", "ndcg@5", "ndcg@10"]


def cf_sids(dataset: str, seed: int, args) -> tuple[Path, dict]:
    """SASRec of ``seed`` (trained or reused) and the SID index built from its item table."""
    overrides = ["model=sasrec", f"dataset={dataset}", f"seed={seed}", f"runs_dir={args.runs_dir}"]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    cfg = load_config(BaselineConfig, BASELINES, overrides)
    sasrec = reuse_or_train(cfg, train_baseline, args.force)
    out = Path(args.runs_dir) / "sids" / f"{dataset}-sasrec-seed{seed}"
    index = out / f"{dataset}.index.json"
    if not index.exists() or args.force:
        model = load_model(Path(cfg.runs_dir) / cfg.experiment / run_name(cfg))
        out.mkdir(parents=True, exist_ok=True)
        table = model.item_emb.weight.detach()[: model.num_items].numpy().astype(np.float32)  # row N is padding
        np.save(out / "sasrec_items.npy", table)
        build_sids(SIDBuildConfig(dataset=dataset, data_dir=args.data_dir or "", embeddings=str(out / "sasrec_items.npy"),
                                  method="rqkmeans", dedup="last_level", out=str(out), threads=1))
    return index, sasrec


def main() -> None:
    ap = dataset_seed_parser(__doc__, list(SFT_CONFIGS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "genrec_sft_cf_sids.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    text_rows = {r["dataset"]: r for r in json.loads((ROOT / "benchmarks" / "results" / "genrec_sft.json").read_text())["rows"]}
    rows, paired = [], {}
    for dataset in args.datasets:
        cf, sasrec, reports = [], [], []
        for seed in args.seeds:
            print(f"{dataset} seed {seed}", flush=True)
            index, base = cf_sids(dataset, seed, args)
            overrides = [f"seed={seed}", f"runs_dir={args.runs_dir}", "experiment=bench-genrec-sft-cf", f"sid_index={index}"]
            if args.data_dir:
                overrides.append(f"data_dir={args.data_dir}")
            cf.append(reuse_or_train(load_config(SFTConfig, SFT_CONFIGS[dataset], overrides), train_sft, args.force))
            sasrec.append(base)
            reports.append(json.loads((index.parent / "sid_report.json").read_text()))
        text = text_rows[dataset]
        text_by_seed = dict(zip(text["seeds"], range(len(text["seeds"])), strict=True))
        arms = {"SFT, SASRec-embedding SIDs": {m: [r["test"][m] for r in cf] for m in METRICS},
                "SASRec": {m: [r["test"][m] for r in sasrec] for m in METRICS}}
        if all(s in text_by_seed for s in args.seeds):
            arms["SFT, text SIDs (genrec_sft.json)"] = {m: [text[m]["values"][text_by_seed[s]] for s in args.seeds] for m in METRICS}
        for arm, values in arms.items():
            row = {"dataset": dataset, "arm": arm, "seeds": args.seeds}
            for m, vals in values.items():
                ci = mean_ci(vals)
                row[m] = {"mean": ci.mean, "ci95": ci.half_width, "values": vals}
            if arm.startswith("SFT, SASRec"):
                row.update(sft_config=str(SFT_CONFIGS[dataset].relative_to(ROOT)), sid_levels=[r["after"]["levels"] for r in reports],
                           collision_rate_before_dedup=[r["before"]["collision_rate"] for r in reports],
                           best_step=[r["best_step"] for r in cf], train_s=[r["train_s"] for r in cf])
            rows.append(row)
        cf_arm = arms["SFT, SASRec-embedding SIDs"]
        paired[dataset] = {m: {"vs_sasrec": paired_ttest(cf_arm[m], arms["SASRec"][m])[1],
                               **({"vs_text_sids": paired_ttest(cf_arm[m], arms["SFT, text SIDs (genrec_sft.json)"][m])[1]}
                                  if len(arms) == 3 else {})} for m in METRICS}
        n10 = {arm: mean_ci(v["ndcg@10"]).mean for arm, v in arms.items()}
        print(f"{dataset}: test NDCG@10 " + ", ".join(f"{a} {v:.4f}" for a, v in n10.items()), flush=True)
    out = {
        "claim": "SIDs from SASRec's item embeddings vs text SIDs for the tiny SFT model, and SASRec itself (same seeds, test file)",
        "command": "python benchmarks/genrec_sft_cf_sids.py --data-dir ../shared/data --seeds " + " ".join(map(str, args.seeds)),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "threads": 1},
        "rows": rows,
        "paired_p": paired,
        "notes": ["paired_p: two-sided paired t-test over seeds of the SASRec-embedding-SID SFT against each other arm.",
                  "collision_rate_before_dedup: share of items whose 3-level codes collide before last-level dedup.",
                  "SASRec input rows of items that never appear in a training history get only the weight-decay gradient, which Adam turns into "
                  "full-size steps towards zero, so they crowd a few codes.",
                  "SASRec is this script's own run per seed, with the current code.",
                  "train_s: optimizer-step seconds on one thread; this run shared the 2 cores with other jobs, so they are not speed numbers."],
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
