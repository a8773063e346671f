"""``rl4rec genrec grpo``: GRPO from an SFT run, or ``--smoke``: the whole path on synthetic data.

    rl4rec genrec grpo --config configs/genrec/grpo_industrial.yaml init_from=<SFT run> seed=0
    rl4rec genrec grpo --smoke                  # synthetic catalog, tiny SFT, 6 GRPO steps: seconds
    rl4rec genrec grpo-text --smoke             # free-text titles grounded by retrieval (spec §10)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_smoke", "run_text_smoke", "format_results"]

#: the smoke run: a 50-item synthetic catalog, a briefly trained tiny LM, a few small GRPO steps
SMOKE_SFT = [
    "experiment=grpo-smoke", "run_name=sft", "threads=1", "tracking.backends=[]", "prompt.preamble=false", "tokenizer.vocab_size=400",
    "tasks.seq_title2sid=0", "tasks.sid2title=0", "max_steps=60", "batch_size=16", "eval_every=60", "eval_rows=50", "eval_beams=5",
    "select_metric=hr@1", "test_beams=5", "ks=[1,3,5]",
]
SMOKE_GRPO = [
    "experiment=grpo-smoke", "run_name=grpo", "threads=1", "tracking.backends=[]", "tasks.seq_title2sid=0", "tasks.title2sid=0",
    "group_size=4", "prompts_per_step=8", "max_steps=6", "eval_every=3", "eval_rows=50", "eval_beams=5", "select_metric=hr@1",
    "test_beams=5", "ks=[1,3,5]", "lr=1e-4", "warmup_ratio=0", "rollout_batch=8", "micro_batch=8",
]


#: the free-text smoke run: titles from titles, grounded by a hashing encoder (no model download)
SMOKE_TEXT_SFT = [
    "experiment=grpo-text-smoke", "run_name=sft", "threads=1", "tracking.backends=[]", "prompt.preamble=false", "tokenizer.vocab_size=400",
    "tasks.seq_sid2sid=0", "tasks.title2sid=0", "tasks.sid2title=0", "tasks.seq_title2sid=0", "tasks.seq_title2title=1", "max_steps=80",
    "batch_size=16", "eval_every=80", "eval_rows=40", "eval_task=seq_title2title", "eval_encoder=hash", "eval_max_new_tokens=12",
    "select_metric=ndcg@10", "ks=[1,5,10]",
]
SMOKE_TEXT_GRPO = [
    "experiment=grpo-text-smoke", "run_name=grpo", "threads=1", "tracking.backends=[]", "retrieval.encoder=hash", "max_new_tokens=12",
    "group_size=4", "prompts_per_step=8", "max_steps=4", "eval_every=2", "eval_rows=40", "ks=[1,5,10]", "lr=1e-4", "warmup_ratio=0",
    "rollout_batch=8", "micro_batch=8",
]


def run_smoke(runs_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = False) -> dict[str, Any] | None:
    """Synthetic data -> 60 SFT steps -> GRPO (6 steps by default; ``overrides`` apply to GRPO)."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset
    from rl4rec.genrec.grpo.config import GRPOConfig
    from rl4rec.genrec.grpo.trainer import train_grpo
    from rl4rec.genrec.sft import SFTConfig, train_sft

    runs_dir = Path(runs_dir)
    folder = write_synthetic_dataset(runs_dir / "grpo-smoke" / "data")
    common = [f"runs_dir={runs_dir}", "resume=true", f"progress={str(progress).lower()}"]
    sft = apply_overrides(SFTConfig, {}, [f"dataset={folder}", *SMOKE_SFT, *common])
    if train_sft(sft) is None:
        return None
    grpo = apply_overrides(GRPOConfig, {}, [*SMOKE_GRPO, *common, f"init_from={runs_dir / 'grpo-smoke' / 'sft'}", *overrides])
    return train_grpo(grpo)


def run_text_smoke(runs_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = False) -> dict[str, Any] | None:
    """Synthetic data -> 80 SFT steps of title generation -> free-text GRPO with a retrieval reward."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset
    from rl4rec.genrec.grpo.config import TextGRPOConfig
    from rl4rec.genrec.grpo.trainer import train_grpo
    from rl4rec.genrec.sft import SFTConfig, train_sft

    runs_dir = Path(runs_dir)
    folder = write_synthetic_dataset(runs_dir / "grpo-text-smoke" / "data")
    common = [f"runs_dir={runs_dir}", "resume=true", f"progress={str(progress).lower()}"]
    if train_sft(apply_overrides(SFTConfig, {}, [f"dataset={folder}", *SMOKE_TEXT_SFT, *common])) is None:
        return None
    grpo = apply_overrides(TextGRPOConfig, {}, [*SMOKE_TEXT_GRPO, *common, f"init_from={runs_dir / 'grpo-text-smoke' / 'sft'}", *overrides])
    return train_grpo(grpo)


def format_results(result: dict[str, Any]) -> str:
    lines = [
        f"GRPO on {result['dataset']} from {result['init_from']}: {result['steps']} steps, rollout={result['rollout']}, "
        f"rewards={result['rewards']}, best step {result['best_step']}, train {result['train_s']:.0f}s, wall {result['wall_s']:.0f}s",
    ]
    if "table" in result:
        lines.append(result["table"])
    lines.append(f"results: {result['run_dir']}/test_results.json")
    return "\n".join(lines)
