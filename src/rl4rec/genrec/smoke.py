"""``--smoke`` of ``genrec grpo | grpo-text | latent-grpo``: synthetic data, a brief SFT, then a few
RL steps from it, in seconds to a minute. The runs are ordinary runs under
``<runs_dir>/<experiment>/sft`` and ``.../grpo``; ``overrides`` apply to the RL stage.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, NamedTuple


class Smoke(NamedTuple):
    experiment: str
    sft_task: str
    sft: tuple[str, ...]
    rl_task: str
    rl: tuple[str, ...]


_TINY = ("threads=1", "tracking.backends=[]", "tokenizer.vocab_size=400")
#: SID GRPO: a 50-item synthetic catalog, a briefly trained tiny LM, 6 small GRPO steps
SID = Smoke(
    "grpo-smoke", "genrec.sft",
    (*_TINY, "prompt.preamble=false", "tasks.seq_title2sid=0", "tasks.sid2title=0", "max_steps=60", "batch_size=16", "eval_every=60",
     "eval_rows=50", "eval_beams=5", "select_metric=hr@1", "test_beams=5", "ks=[1,3,5]"),
    "genrec.grpo",
    ("threads=1", "tracking.backends=[]", "tasks.seq_title2sid=0", "tasks.title2sid=0", "group_size=4", "prompts_per_step=8",
     "max_steps=6", "eval_every=3", "eval_rows=50", "eval_beams=5", "select_metric=hr@1", "test_beams=5", "ks=[1,3,5]", "lr=1e-4",
     "warmup_ratio=0", "rollout_batch=8", "micro_batch=8"),
)
#: free text: titles from titles, grounded by a hashing encoder (no model download)
TEXT = Smoke(
    "grpo-text-smoke", "genrec.sft",
    (*_TINY, "prompt.preamble=false", "tasks.seq_sid2sid=0", "tasks.title2sid=0", "tasks.sid2title=0", "tasks.seq_title2sid=0",
     "tasks.seq_title2title=1", "max_steps=80", "batch_size=16", "eval_every=80", "eval_rows=40", "eval_task=seq_title2title",
     "eval_encoder=hash", "eval_max_new_tokens=12", "select_metric=ndcg@10", "ks=[1,5,10]"),
    "genrec.grpo_text",
    ("threads=1", "tracking.backends=[]", "retrieval.encoder=hash", "max_new_tokens=12", "group_size=4", "prompts_per_step=8",
     "max_steps=4", "eval_every=2", "eval_rows=40", "ks=[1,5,10]", "lr=1e-4", "warmup_ratio=0", "rollout_batch=8", "micro_batch=8"),
)
#: latent reasoning: 150 SFT steps with the latent, then 6 noise-GRPO steps
LATENT = Smoke(
    "latent-smoke", "genrec.latent_sft",
    ("threads=1", "tokenizer.vocab_size=400", "train_recipe=file", "max_steps=150", "eval_every=75", "batch_size=16", "lr=3e-3",
     "warmup_steps=10", "eval.rows=64", "eval.beams=5", "select_metric=ndcg@5", "eval.batch_size=32"),
    "genrec.latent_grpo",
    ("threads=1", "max_steps=6", "prompts_per_step=8", "latent_rl.group_size=4", "eval.rows=64", "eval.beams=5", "select_metric=ndcg@5",
     "lr=1e-3", "warmup_steps=1"),
)


def _stage(smoke: Smoke, task: str, overrides: list[str], runs_dir, progress: bool) -> dict[str, Any] | None:
    """One stage of ``smoke``: an ordinary, resumable run of ``task`` under ``<runs_dir>/<experiment>``."""
    from rl4rec.config import apply_overrides
    from rl4rec.registry import get_pipeline

    pipeline = get_pipeline(task)
    common = [f"experiment={smoke.experiment}", f"runs_dir={runs_dir}", "resume=true", f"progress={progress}".lower()]
    return pipeline.run(apply_overrides(pipeline.config_class(), {}, [*common, *overrides]))


def smoke_sft(smoke: Smoke, runs_dir: str | Path, progress: bool = False) -> dict[str, Any] | None:
    """The SFT stage alone (synthetic data -> ``<runs_dir>/<experiment>/sft``); its result."""
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(Path(runs_dir) / smoke.experiment / "data")
    return _stage(smoke, smoke.sft_task, [f"dataset={folder}", "run_name=sft", *smoke.sft], runs_dir, progress)


def run_smoke(smoke: Smoke, runs_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = False) -> dict[str, Any] | None:
    """Synthetic data -> SFT -> RL; the RL result with the SFT test metrics as ``sft_test``."""
    sft = smoke_sft(smoke, runs_dir, progress)
    if sft is None:
        return None
    init = Path(runs_dir) / smoke.experiment / "sft"
    rl = [*smoke.rl, "run_name=grpo", f"init_from={init}", *overrides]
    result = _stage(smoke, smoke.rl_task, rl, runs_dir, progress)
    if result is not None:
        result["sft_test"] = sft.get("test")
    return result


sid_smoke = partial(run_smoke, SID)
text_smoke = partial(run_smoke, TEXT)
latent_smoke = partial(run_smoke, LATENT)
