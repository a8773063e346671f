"""``GRPOConfig``: every knob of ``rl4rec genrec grpo``, defaults from the launcher column of spec
genrec.md §7.9 (beam rollouts, G = 16, 64 prompts per optimizer step whatever the device count,
beta 1e-3, lr 1e-5, reference sync alpha 0.6 every 512 steps, cosine schedule, grad-norm 0.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rl4rec.config import ConfigError, field
from rl4rec.genrec.grpo.rewards import REWARDS
from rl4rec.genrec.retrieval import RetrievalConfig
from rl4rec.training import TrainingConfig, check_rank_metric, default

__all__ = ["GRPOCommon", "GRPOConfig", "TextGRPOConfig", "GRPOTaskMix", "RETRIEVAL_REWARDS"]

#: rewards of free-text generation grounded by retrieval (spec §10); not for SID rollouts
RETRIEVAL_REWARDS = ("ndcg", "hit", "mrr", "mixed")


@dataclass(frozen=True)
class GRPOTaskMix:
    """Per-epoch multiplier of each SID-answer task's natural size (0 = off); spec §7.1."""

    seq_sid2sid: float = field(1.0, "history SIDs -> next SID, one prompt per training row", ge=0.0)
    title2sid: float = field(1.0, "item title -> SID, one prompt per catalog item", ge=0.0)
    desc2sid: float = field(0.0, "item description -> SID, one prompt per catalog item (spec: on; off here: SFT does not train it by default)", ge=0.0)
    seq_title2sid: float = field(1.0, "history titles -> next SID, one prompt per training row (capped by seq_title2sid_rows)", ge=0.0)

    def weights(self) -> dict[str, float]:
        return {t: getattr(self, t) for t in ("seq_sid2sid", "title2sid", "desc2sid", "seq_title2sid") if getattr(self, t) > 0}


@dataclass(frozen=True)
class GRPOCommon(TrainingConfig):
    """What every GRPO variant shares: the start, groups, rewards, objective, optimisation, evaluation."""

    NAME_EXCLUDE = (*TrainingConfig.NAME_EXCLUDE, "init_from", "eval_batch_size", "keep_every", "test_at_end", "stop_at_step", "rollout_batch", "micro_batch")

    experiment: str = field("genrec-grpo", "experiment name")
    init_from: str = field("", "the SFT run to start from: folder, EXPERIMENT/NAME or a unique run name under runs_dir", short="")
    init_which: Literal["best", "last"] = field("best", "which saved model of the SFT run")
    group_size: int = field(16, "completions per prompt (G, TRL's num_generations)", ge=2, short="G")
    temperature: float = field(1.0, "softmax temperature of rollouts (and of the policy's log-probs)", gt=0.0, short="T")
    rewards: dict[str, float] = field({"rule": 1.0, "ndcg_rule": 1.0}, "reward name -> weight (registered: rule, ndcg_rule, ranking, prefix, rank_hit, semantic, cf)")
    invalid_reward: float = field(0.0, "reward of a completion outside the catalog (never a random item's score)")
    reward_aggregation: Literal["sum", "normalize_then_sum"] = field(
        "sum", "weighted sum of the raw rewards, or of each reward z-scored within its group first (GDPO, TRL's normalize_then_sum)")
    # objective
    scale_rewards: Literal["group", "none"] = field("group", "advantages divided by the group's reward std (group) or only centred (none)")
    loss_type: Literal["grpo", "dapo", "gspo"] = field("grpo", "per-sequence mean (grpo), token mean (dapo) or sequence-ratio (gspo) loss")
    beta: float = field(1e-3, "KL weight (k3 estimator to the reference model); 0 skips the reference model", ge=0.0)
    clip_eps: float = field(0.2, "PPO clip range (acts only with num_iterations > 1)", gt=0.0)
    num_iterations: int = field(1, "optimizer steps on each generation batch (1 = on-policy, ratio 1)", ge=1)
    sync_ref: bool = field(True, "TR-DPO soft sync of the reference model: ref <- alpha*policy + (1-alpha)*ref")
    ref_alpha: float = field(0.6, "mixing weight of the reference sync", gt=0.0, le=1.0)
    ref_sync_every: int = field(512, "optimizer steps between reference syncs", ge=1)
    # optimisation
    prompts_per_step: int = field(64, "prompts per optimizer step over all processes (x G completions)", ge=1, short="P")
    rollout_batch: int = field(16, "prompts per generation call (memory)", ge=1)
    micro_batch: int = field(16, "prompts (x G completions) per forward/backward chunk; gradients accumulate (memory)", ge=1)
    epochs: int = field(2, "passes over the prompt mixture", ge=1)
    max_steps: int = field(0, "stop after this many optimizer steps (0 = epochs decide)", ge=0)
    lr: float = default(TrainingConfig, "lr", 1e-5, "AdamW peak learning rate")
    weight_decay: float = default(TrainingConfig, "weight_decay", 0.0)
    warmup_ratio: float = default(TrainingConfig, "warmup_ratio", 0.03)
    schedule: Literal["linear", "cosine", "constant"] = default(TrainingConfig, "schedule", "cosine", "decay after warm-up (transformers' schedulers: cosine and linear to 0)")
    grad_clip: float = default(TrainingConfig, "grad_clip", 0.3)
    mixed_precision: Literal["no", "bf16", "fp16"] = default(TrainingConfig, "mixed_precision", "no")
    # evaluation and checkpoints
    eval_every: int = default(TrainingConfig, "eval_every", 0, "validate every N steps (0 = ten times per run, as upstream's eval_steps 0.0999)")
    eval_at_start: bool = default(TrainingConfig, "eval_at_start", True)
    eval_rows: int = field(1000, "validation rows (the same fixed subset as SFT; 0 = all)", ge=0)
    eval_batch_size: int = field(32, "prompts per validation batch", ge=1)
    select_metric: str = default(TrainingConfig, "select_metric", "ndcg@10", "validation metric selecting the best model (hr@K | ndcg@K | mrr@K)")
    ks: tuple[int, ...] = field((1, 3, 5, 10, 20), "cut-offs reported")

    def check(self) -> None:
        super().check()
        check_rank_metric(self.select_metric)
        if not self.rewards:
            raise ConfigError("rewards: name at least one reward, e.g. rewards={rule: 1.0, ndcg_rule: 1.0}")
        unknown = [r for r in self.rewards if r not in REWARDS]
        if unknown:
            raise ConfigError(f"rewards: unknown reward(s) {unknown}; registered: {', '.join(sorted(REWARDS))}")


@dataclass(frozen=True)
class GRPOConfig(GRPOCommon):
    """GRPO of a SID generative recommender from an SFT run (``rl4rec genrec grpo``)."""

    NAME_KEYS = ("rollout",)

    tasks: GRPOTaskMix = field(default_factory=GRPOTaskMix, help="prompt mixture (SID-answer tasks)")
    seq_title2sid_rows: int = field(10000, "seq_title2sid uses a fixed random sample of at most this many train rows (spec §7.1; never crashes on fewer)", ge=1)
    rollout: Literal["beam", "sample", "sample_dedup", "mixed"] = field(
        "beam", "beam: the G best distinct items; sample: G constrained samples; sample_dedup: distinct samples first; mixed: beam_share x G beams, the rest samples"
    )
    beam_share: float = field(0.5, "rollout=mixed: share of each group from beam search (rounded; at least 1 beam and 1 sample)", gt=0.0, lt=1.0)
    dynamic_sampling: bool = field(False, "sampling rollouts: oversample, then every copy of the target first, then distinct items (spec §7.3)")
    oversample: float = field(1.5, "sample_dedup / dynamic_sampling draw oversample x G per prompt", ge=1.0)
    add_gt: bool = field(False, "replace the last completion of each group by the target's (with EOS)")
    semantic_encoder: str = field("hash", "item text encoder of the semantic reward: minilm | hash[:DIM] | local model folder")
    semantic_embeddings: str = field("", "a (num_items, d) .npy of item embeddings for the semantic reward (replaces semantic_encoder)")
    cf_model: str = field("", "the cf reward's scorer: a SASRec/GRU4Rec baseline run folder or saved model file")
    logprob_space: Literal["trie", "vocab"] = field(
        "trie", "log-probs of the constrained policy that generated the rollouts (trie: softmax over allowed tokens) or of the whole vocabulary (vocab, upstream)"
    )
    eval_beams: int = field(20, "beams of the validation beam search", ge=1)
    test_beams: int = field(20, "beams of the final test evaluation", ge=1)

    def check(self) -> None:
        super().check()
        check_rank_metric(self.select_metric, self.eval_beams, "eval_beams")
        if not self.tasks.weights():
            raise ConfigError("tasks: every task weight is 0; give at least one task a positive weight")
        text = [r for r in self.rewards if r in RETRIEVAL_REWARDS]
        if text:
            raise ConfigError(f"rewards: {text} score free text through retrieval (spec §10; rl4rec genrec grpo-text), not SID rollouts")
        if "cf" in self.rewards:
            if not self.cf_model:
                raise ConfigError("rewards: cf needs cf_model=<SASRec baseline run folder or model file>")
            item_tasks = [t for t in ("title2sid", "desc2sid") if t in self.tasks.weights()]
            if item_tasks:
                raise ConfigError(f"rewards: cf scores a history; the item tasks {item_tasks} have none (set tasks.<task>=0)")
        if self.rollout in ("beam", "mixed") and self.dynamic_sampling:
            raise ConfigError(f"dynamic_sampling applies to sampling rollouts (rollout=sample or sample_dedup), not {self.rollout}")


@dataclass(frozen=True)
class TextGRPOConfig(GRPOCommon):
    """GRPO of a free-text recommender grounded by retrieval (``rl4rec genrec grpo-text``, spec §10):
    the policy writes the next item's title (task ``seq_title2title``), a retrieval service ranks
    the catalog by similarity to it, and the target's rank is the reward."""

    NAME_KEYS = ("generation_backend",)

    experiment: str = field("genrec-grpo-text", "experiment name")
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig, help="the retrieval service grounding generated text")
    generation_backend: Literal["hf", "vllm"] = field("hf", "hf generate (CPU/GPU) or vllm (installed + CUDA GPU)", short="gen")
    max_new_tokens: int = field(32, "longest generated text in tokens", ge=1)
    vllm_sync_every: int = field(1, "vllm: reload the policy's weights into the engine every N steps", ge=1)
    # spec §10 defaults: 4 samples per prompt, batch 4 x grad-accum 4 (16 prompts per update), lr 1e-5, clip 1.0
    group_size: int = field(4, "completions per prompt (num_sample_generations; 2-8 recommended)", ge=2, short="G")
    prompts_per_step: int = field(16, "prompts per optimizer step over all processes (x G completions)", ge=1, short="P")
    rewards: dict[str, float] = field({"ndcg": 1.0}, "retrieval reward -> weight: ndcg | hit | mrr | mixed (of the target's rank)")
    reward_cutoff: int = field(10, "K of the ndcg/hit/mrr rewards: rank >= K earns 0", ge=1)
    mixed_weights: dict[str, float] = field({"ndcg": 0.8, "hit": 0.2}, "the mixed reward: sum of w * reward over these retrieval rewards")
    beta: float = field(0.04, "KL weight to the frozen initial model (0 = no reference model)", ge=0.0)
    sync_ref: bool = field(False, "TR-DPO soft sync of the reference model")
    grad_clip: float = default(TrainingConfig, "grad_clip", 1.0)
    eval_rows: int = field(500, "validation rows (a fixed subset; 0 = all)", ge=0)

    def check(self) -> None:
        super().check()
        other = [r for r in self.rewards if r not in RETRIEVAL_REWARDS]
        if other:
            raise ConfigError(f"rewards: {other} score SID completions (rl4rec genrec grpo); free text takes {', '.join(RETRIEVAL_REWARDS)}")
        bad = [r for r in self.mixed_weights if r not in ("ndcg", "hit", "mrr")]
        if bad:
            raise ConfigError(f"mixed_weights: {bad} are not retrieval rewards (ndcg, hit, mrr)")
