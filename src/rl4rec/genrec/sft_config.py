"""The config of ``rl4rec genrec sft`` (its own module, so loading a trained run needs no trainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rl4rec.config import ConfigError, field
from rl4rec.genrec.model import ModelConfig
from rl4rec.genrec.prompts import TASKS, PromptConfig
from rl4rec.genrec.tokenizer import TokenizerConfig
from rl4rec.training import TrainingConfig, check_rank_metric, default

__all__ = ["SFTConfig", "TaskMix"]


@dataclass(frozen=True)
class TaskMix:
    """Per-epoch multiplier of each task's natural size (0 = off)."""

    seq_sid2sid: float = field(1.0, "history SIDs -> next SID, one sample per training row", ge=0.0)
    title2sid: float = field(1.0, "item title -> its SID, one sample per catalog item", ge=0.0)
    sid2title: float = field(1.0, "SID -> the item's title, one sample per catalog item", ge=0.0)
    seq_title2sid: float = field(1.0, "history titles -> next SID, one sample per training row", ge=0.0)
    seq_sid2title: float = field(0.0, "history SIDs -> next item's title, one sample per training row", ge=0.0)
    desc2sid: float = field(0.0, "item description -> its SID, one sample per catalog item", ge=0.0)
    seq_title2title: float = field(0.0, "history titles -> next item's title (free text, no SIDs), one sample per training row", ge=0.0)

    def weights(self) -> dict[str, float]:
        return {t: getattr(self, t) for t in TASKS if getattr(self, t) > 0}


@dataclass(frozen=True)
class SFTConfig(TrainingConfig):
    """Supervised fine-tuning of a SID generator (``rl4rec genrec sft``)."""

    NAME_KEYS = ("dataset", "model.preset")
    NAME_EXCLUDE = (*TrainingConfig.NAME_EXCLUDE, "data_dir", "eval_batch_size", "keep_every", "test_at_end", "stop_at_step", "baselines_file")

    experiment: str = field("genrec-sft", "experiment name")
    dataset: str = field("Industrial_and_Scientific", "category name or folder", short="")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    train_recipe: str = field("auto", "training rows: auto (train.csv if present, else r1) | file | r1 | r1+r2 | ...", short="train")
    sid_index: str = field("", "index.json replacing the folder's SIDs (e.g. from build-sids); needed when the folder has none", short="sids")
    skip_bad_rows: bool = field(False, "drop malformed CSV rows instead of failing")
    model: ModelConfig = field(default_factory=ModelConfig, help="the causal LM")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig, help="the from-scratch tokenizer")
    prompt: PromptConfig = field(default_factory=PromptConfig, help="prompt templates (stored with the model)")
    tasks: TaskMix = field(default_factory=TaskMix, help="the task mixture")
    max_len: int = field(512, "tokens per sample; the oldest history items are dropped to fit (counted)", ge=16)
    epochs: int = field(3, "passes over the mixture", ge=1)
    max_steps: int = field(0, "stop after this many optimizer steps (0 = epochs decide)", ge=0)
    batch_size: int = field(32, "samples per optimizer step", ge=1, short="bs")
    lr: float = default(TrainingConfig, "lr", 1e-3, "AdamW peak learning rate (from scratch ~1e-3; full fine-tuning of a pretrained LM 1e-5..3e-4)")
    weight_decay: float = default(TrainingConfig, "weight_decay", 0.0)
    warmup_steps: int = default(TrainingConfig, "warmup_steps", 20)
    schedule: Literal["linear", "cosine", "constant"] = default(TrainingConfig, "schedule", "linear", "decay after warm-up (to 0; cosine to 10%)")
    grad_clip: float = default(TrainingConfig, "grad_clip", 1.0)
    eval_every: int = default(TrainingConfig, "eval_every", 0, "validate every N steps (0 = at the end of each epoch)")
    eval_rows: int = field(1000, "validation rows (a fixed random subset of valid; 0 = all)", ge=0)
    eval_beams: int = field(20, "beams of the validation beam search", ge=1)
    eval_batch_size: int = field(32, "prompts per validation beam search", ge=1)
    select_metric: str = default(TrainingConfig, "select_metric", "ndcg@10", "validation metric selecting the best model (hr@K | ndcg@K | mrr@K)")
    patience: int = default(TrainingConfig, "patience", 0)
    ks: tuple[int, ...] = field((1, 3, 5, 10, 20), "cut-offs reported (K <= beams)")
    test_beams: int = field(20, "beams of the final test evaluation", ge=1)
    eval_task: Literal["seq_sid2sid", "seq_title2title"] = field(
        "seq_sid2sid", "what validation/test measure: SIDs by constrained beam search, or free-text titles grounded by retrieval (spec §10)"
    )
    eval_encoder: str = field("minilm", "eval_task=seq_title2title: the text encoder grounding generated titles (minilm | hash[:DIM] | local folder)")
    eval_max_new_tokens: int = field(32, "eval_task=seq_title2title: longest generated title", ge=1)
    baselines_file: str = field("", "a benchmark JSON of baselines on the same split (e.g. benchmarks/results/genrec_baselines.json) shown beside the test metrics")
    popularity_groups: int = field(3, "test rows grouped by history popularity (counted on train)", ge=1)

    def check(self) -> None:
        super().check()
        check_rank_metric(self.select_metric, self.eval_beams if self.eval_task == "seq_sid2sid" else None, "eval_beams")
        if not self.tasks.weights():
            raise ConfigError("tasks: every task weight is 0; give at least one task a positive weight")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError("ks: needs positive cut-offs")
