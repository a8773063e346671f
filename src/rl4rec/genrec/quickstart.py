"""Quickstart stages of the genrec family (appended to ``rl4rec quickstart``); generated data only."""

from __future__ import annotations

from pathlib import Path


def stage_baselines(runs_dir: Path) -> list[dict]:
    """Synthetic 50-item category with a known next-item rule: popularity vs SASRec, full ranking."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(Path(runs_dir) / "quickstart" / "data")
    rows = []
    for model, extra in (("pop", []), ("sasrec", ["epochs=15", "dropout=0.1"])):
        cfg = apply_overrides(
            BaselineConfig, {}, [f"model={model}", f"dataset={folder}", f"runs_dir={runs_dir}", "experiment=quickstart", "resume=true", *extra]
        )
        result = train_baseline(cfg) or {}
        rows.append(
            {
                "stage": "genrec",
                "what": f"{model} on a synthetic catalog (50 items, next = successor w.p. 0.9)",
                "metric": "test/hr@1",
                "value": result.get("test", {}).get("hr@1"),
            }
        )
    return rows


def _sft_config(runs_dir: Path):
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset
    from rl4rec.genrec.sft import SFTConfig

    folder = write_synthetic_dataset(Path(runs_dir) / "quickstart" / "data")
    overrides = [
        f"dataset={folder}", f"runs_dir={runs_dir}", "experiment=quickstart", "resume=true", "threads=1", "progress=false",
        "prompt.preamble=false", "tokenizer.vocab_size=400", "tasks.seq_title2sid=0", "epochs=6", "batch_size=16",
        "eval_rows=100", "select_metric=hr@1",
    ]
    return apply_overrides(SFTConfig, {}, overrides)


def stage_sft(runs_dir: Path) -> list[dict]:
    """A tiny Qwen2-style LM trained from scratch on the same synthetic category (SID tasks), then
    tested with constrained beam search (~20 s on one core)."""
    from rl4rec.genrec.sft import train_sft

    result = train_sft(_sft_config(runs_dir)) or {}
    test = result.get("test", {})
    return [
        {
            "stage": "genrec",
            "what": "SFT of a tiny LM on the synthetic catalog, 20-beam constrained search",
            "metric": "test/hr@1",
            "value": test.get("hr@1"),
        },
        {"stage": "genrec", "what": "SFT generations outside the catalog", "metric": "test/invalid_rate", "value": test.get("invalid_rate")},
    ]


def stage_grpo(runs_dir: Path) -> list[dict]:
    """GRPO from the SFT model of the previous stage: beam rollouts (G = 8 distinct items), rule +
    ndcg_rule rewards, 30 steps of 32 prompts (~30 s on one core); the SFT model competes for best."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.grpo.config import GRPOConfig
    from rl4rec.genrec.grpo.trainer import train_grpo
    from rl4rec.naming import run_name

    sft = _sft_config(runs_dir)
    overrides = [
        f"init_from={Path(runs_dir) / 'quickstart' / run_name(sft)}", f"runs_dir={runs_dir}", "experiment=quickstart", "resume=true",
        "threads=1", "progress=false", "tasks.title2sid=0", "tasks.seq_title2sid=0", "group_size=8", "prompts_per_step=32",
        "max_steps=30", "eval_every=10", "lr=2e-4", "warmup_ratio=0", "eval_rows=100", "select_metric=hr@1",
    ]
    result = train_grpo(apply_overrides(GRPOConfig, {}, overrides)) or {}
    start = (result.get("start_valid") or {}).get("valid/hr@1")
    return [
        {"stage": "genrec", "what": "GRPO from that SFT model: validation HR@1 at the start", "metric": "valid/hr@1", "value": start},
        {"stage": "genrec", "what": f"GRPO, 30 steps (best step {result.get('best_step')})", "metric": "valid/hr@1", "value": (result.get("best_valid") or {}).get("hr@1")},
        {"stage": "genrec", "what": "GRPO best model on the test rows", "metric": "test/hr@1", "value": result.get("test", {}).get("hr@1")},
    ]


def stage_grpo_text(runs_dir: Path) -> list[dict]:
    """Free text grounded by retrieval: a tiny LM writes the next item's title (80 SFT steps), then
    4 GRPO steps with the NDCG@10 of the target's retrieval rank as the reward (~30 s)."""
    from rl4rec.genrec.grpo.cli import run_text_smoke

    result = run_text_smoke(runs_dir) or {}
    return [
        {"stage": "genrec", "what": "free-text SFT, titles grounded by a hashing retriever (50 items)", "metric": "test/ndcg@10",
         "value": (result.get("sft_test") or {}).get("ndcg@10")},
        {"stage": "genrec", "what": "free-text GRPO with the retrieval NDCG reward, 4 steps", "metric": "test/ndcg@10", "value": (result.get("test") or {}).get("ndcg@10")},
    ]


def stage_latent(runs_dir: Path) -> list[dict]:
    """Latent reasoning (LatentR3-style): a tiny LM + one latent thought vector writes the next
    item's title under a title trie (150 SFT steps), then 6 noise-GRPO steps of the latent module
    with the LM frozen (~1 min)."""
    from rl4rec.genrec.latent.cli import run_smoke

    result = run_smoke(runs_dir) or {}
    sft, test = result.get("sft_test") or {}, result.get("test") or {}
    return [
        {"stage": "genrec", "what": "latent SFT, 5-beam title-trie search (50 synthetic items)", "metric": "test/hr@1", "value": sft.get("hr@1")},
        {"stage": "genrec", "what": "MostPop titles on the same rows", "metric": "test/hr@1", "value": (result.get("mostpop") or {}).get("hr@1")},
        {"stage": "genrec", "what": f"latent + noise-GRPO, 6 steps (best step {result.get('best_step')})", "metric": "test/hr@1", "value": test.get("hr@1")},
    ]
