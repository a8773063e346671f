"""Recommendation rewards as registered callables ``(rollouts, context) -> (M,) tensor``.

``Rollouts`` carries everything explicitly: the prompt (group) id, the generated item id (-1 when
the completion is not a catalog item), its rank inside its group (beam rank), the target item id
and the history. Unknown items never get a random score: every reward gives them
``context.invalid_reward`` and the invalid rate is reported by :func:`combine_rewards`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Rollouts:
    """M completions of a batch of prompts, one row each."""

    prompt_ids: torch.Tensor  # (M,) long: which prompt (group) the completion answers
    item_ids: torch.Tensor  # (M,) long: generated item, -1 = invalid
    ranks: torch.Tensor  # (M,) long: rank inside the group (0 = best beam)
    target_ids: torch.Tensor  # (M,) long
    histories: list[list[int]] | None = None
    target_ranks: torch.Tensor | None = None  # (M,) long: retrieval rank of the target (free-text rewards)

    def __post_init__(self) -> None:
        m = self.prompt_ids.shape[0]
        for name in ("item_ids", "ranks", "target_ids"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"Rollouts.{name} must have shape ({m},), got {tuple(getattr(self, name).shape)}")

    @property
    def valid(self) -> torch.Tensor:
        return self.item_ids >= 0

    @property
    def hits(self) -> torch.Tensor:
        return self.valid & (self.item_ids == self.target_ids)


@dataclass
class RewardContext:
    """What rewards may need besides the rollouts."""

    invalid_reward: float = 0.0
    group_size: int | None = None  # G for the NDCG-style rank weights (default: the group's size)
    item_embeddings: torch.Tensor | None = None  # (N, d) for `semantic`
    cf_scorer: Any = None  # object with score(histories, items) -> (M,) (SASRec) for `cf`
    cutoff: int = 10  # K of the retrieval rewards
    mixed_weights: dict[str, float] = field(default_factory=lambda: {"ndcg": 0.8, "hit": 0.2})
    item_codes: torch.Tensor | None = None  # (N, L) SID codes of every item, for `prefix`
    aggregation: str = "sum"  # "sum" of raw rewards, or "normalize_then_sum" (each reward z-scored within its group first)


log = logging.getLogger(__name__)

RewardFn = Callable[[Rollouts, RewardContext], torch.Tensor]
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    def wrap(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = fn
        return fn

    return wrap


def _invalid(r: torch.Tensor, rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    return torch.where(rollouts.valid, r, torch.full_like(r, ctx.invalid_reward))


def group_index(prompt_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group index 0..g-1 of every row and the number of groups."""
    uniq, inverse = torch.unique(prompt_ids, return_inverse=True)
    return inverse, int(uniq.numel())


def rank_weights(group_size: int) -> torch.Tensor:
    """``w_i = (1/log2(i+2)) / sum_j 1/log2(j+2)`` for i = 0..G-1 (spec §7.4)."""
    raw = 1.0 / torch.log2(torch.arange(group_size, dtype=torch.float64) + 2)
    return (raw / raw.sum()).float()


@register_reward("rule")
def rule_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """1 if the completion is the target item, else 0."""
    return _invalid(rollouts.hits.float(), rollouts, ctx)


@register_reward("ndcg_rule")
def ndcg_rule_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """0 for a hit, ``-w_rank`` for a miss; every row of a group without any hit gets 0."""
    idx, n_groups = group_index(rollouts.prompt_ids)
    sizes = torch.bincount(idx, minlength=n_groups)
    g = ctx.group_size or int(sizes.max())
    if int(rollouts.ranks.max()) >= g:
        raise ValueError(f"a rank of {int(rollouts.ranks.max())} does not fit groups of size {g}")
    w = rank_weights(g)[rollouts.ranks]
    group_hit = (torch.zeros(n_groups).index_add_(0, idx, rollouts.hits.float()) > 0).float()
    r = torch.where(rollouts.hits, 0.0, -w) * group_hit[idx]
    return _invalid(r, rollouts, ctx)


@register_reward("ranking")
def ranking_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """``rule + ndcg_rule`` (MiniOneRec's launcher reward): 1 hit, -w_rank miss in a group with a hit."""
    return _invalid(rule_reward(rollouts, ctx) + ndcg_rule_reward(rollouts, ctx), rollouts, ctx)


@register_reward("prefix")
def prefix_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """Partial credit for the SID: the share of the target's codes the completion gets right from
    the first level on (OneRec-Think's hierarchical match). With 3 levels: 0, 1/3, 2/3 or 1."""
    if ctx.item_codes is None:
        raise ValueError("the prefix reward needs RewardContext.item_codes (the catalog's SID codes)")
    codes = ctx.item_codes
    same = codes[rollouts.item_ids.clamp(min=0)] == codes[rollouts.target_ids]  # (M, L)
    matched = same.long().cumprod(1).sum(1)  # leading levels that agree
    r = torch.where(rollouts.hits, 1.0, matched.float() / codes.shape[1])
    return _invalid(r, rollouts, ctx)


@register_reward("rank_hit")
def rank_hit_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """Rank-aware hit: ``1/log2(rank+2)`` for the target at group rank ``rank`` (beam rank, or the
    sample's rank by log-prob), 0 for a miss: a hit further down the beam earns less."""
    r = torch.where(rollouts.hits, 1.0 / torch.log2(rollouts.ranks.float() + 2), 0.0)
    return _invalid(r, rollouts, ctx)


def group_moments(x: torch.Tensor, prompt_ids: torch.Tensor, *, ddof: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(group index of every row, each group's mean, each group's std with ``ddof``), in ``x``'s dtype."""
    idx, n = group_index(prompt_ids)
    count = torch.bincount(idx, minlength=n).to(x.dtype)
    mean = x.new_zeros(n).index_add_(0, idx, x) / count
    var = x.new_zeros(n).index_add_(0, idx, (x - mean[idx]).pow(2)) / (count - ddof).clamp(min=1)
    return idx, mean, var.sqrt()


def group_normalize(r: torch.Tensor, prompt_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(r - mean_g) / (std_g + eps)`` within each prompt's group (population std); a group whose
    reward does not vary gets 0."""
    x = r.double()
    idx, mean, std = group_moments(x, prompt_ids)
    return ((x - mean[idx]) / (std[idx] + eps)).to(r.dtype)


@register_reward("semantic")
def semantic_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """Cosine similarity of the item text embeddings of completion and target."""
    if ctx.item_embeddings is None:
        raise ValueError("the semantic reward needs RewardContext.item_embeddings")
    emb = torch.nn.functional.normalize(ctx.item_embeddings.float(), dim=-1)
    safe = rollouts.item_ids.clamp(min=0)
    r = (emb[safe] * emb[rollouts.target_ids]).sum(-1)
    return _invalid(r, rollouts, ctx)


@register_reward("cf")
def cf_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """The collaborative scorer's (SASRec) raw score of the completion given the history."""
    if ctx.cf_scorer is None or rollouts.histories is None:
        raise ValueError("the cf reward needs RewardContext.cf_scorer and Rollouts.histories")
    r = torch.zeros(rollouts.item_ids.shape)
    valid = rollouts.valid
    if bool(valid.any()):
        rows = valid.nonzero().squeeze(-1).tolist()
        hist = [rollouts.histories[i] for i in rows]
        r[valid] = torch.as_tensor(ctx.cf_scorer.score(hist, rollouts.item_ids[valid]), dtype=torch.float32)
    return _invalid(r, rollouts, ctx)


def ground_texts(retrieval, texts: list[str], targets: torch.Tensor, histories=None) -> tuple[torch.Tensor, ...]:
    """(the target's retrieval rank, the grounded item) of each generated text: the grounded item
    is the catalog item closest to the text (the target when it ranks first); an empty text is
    invalid (-1). ``histories``: items to leave out of each ranking."""
    ranks, top = (torch.as_tensor(x, dtype=torch.long) for x in retrieval.ground(texts, targets.tolist(), histories))
    empty = torch.as_tensor([not t for t in texts])
    return ranks, torch.where(empty, -1, torch.where(ranks == 0, targets, top))


def _retrieval(rollouts: Rollouts, ctx: RewardContext, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if rollouts.target_ranks is None:
        raise ValueError("retrieval rewards need Rollouts.target_ranks (the target's rank for each generated text)")
    r = rollouts.target_ranks.float()
    return torch.where(r < ctx.cutoff, fn(r), torch.zeros_like(r))


@register_reward("ndcg")
def ndcg_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """``1/log2(r+2)`` if the target's retrieval rank r < K, else 0."""
    return _retrieval(rollouts, ctx, lambda r: 1.0 / torch.log2(r + 2))


@register_reward("hit")
def hit_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    return _retrieval(rollouts, ctx, torch.ones_like)


@register_reward("mrr")
def mrr_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    return _retrieval(rollouts, ctx, lambda r: 1.0 / (r + 1))


@register_reward("mixed")
def mixed_reward(rollouts: Rollouts, ctx: RewardContext) -> torch.Tensor:
    """``sum_k w_k reward_k`` over retrieval rewards named in ``ctx.mixed_weights``."""
    total = torch.zeros(rollouts.prompt_ids.shape)
    for name, weight in ctx.mixed_weights.items():
        if name == "mixed" or name not in REWARDS:
            raise ValueError(f"mixed_weights: {name!r} is not a retrieval reward")
        total = total + weight * REWARDS[name](rollouts, ctx)
    return total


def combine_rewards(
    rollouts: Rollouts, weights: dict[str, float], ctx: RewardContext
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the named rewards, and metrics: mean/std per reward, invalid rate.

    Invalid completions get ``ctx.invalid_reward`` in the total, once (not once per reward).
    ``ctx.aggregation="normalize_then_sum"`` z-scores each reward within its group before the
    weighted sum (GDPO; TRL's ``multi_objective_aggregation``), so a reward on a larger scale
    (cf, semantic) cannot drown a sparse one; the invalid completions' value is then applied to
    the normalised total.
    """
    if ctx.aggregation not in ("sum", "normalize_then_sum"):
        raise ValueError(f"aggregation must be 'sum' or 'normalize_then_sum', got {ctx.aggregation!r}")
    unknown = [n for n in weights if n not in REWARDS]
    if unknown:
        raise KeyError(f"unknown reward(s) {unknown}; registered: {', '.join(sorted(REWARDS))}")
    total = torch.zeros(rollouts.prompt_ids.shape)
    metrics: dict[str, float] = {}
    for name, weight in weights.items():
        r = REWARDS[name](rollouts, ctx)
        bad = int((~torch.isfinite(r) & rollouts.valid).sum())
        if bad:  # kept: the update's gradients turn non-finite, and the loop stops or skips the step (skip_nonfinite)
            log.warning("reward %r is NaN/inf for %d of %d completions", name, bad, r.numel())
        total = total + weight * (group_normalize(r, rollouts.prompt_ids) if ctx.aggregation == "normalize_then_sum" else r)
        metrics[f"rewards/{name}_mean"] = float(r.mean())
        metrics[f"rewards/{name}_std"] = float(r.std()) if r.numel() > 1 else 0.0
    total = _invalid(total, rollouts, ctx)
    metrics["train/invalid_rate"] = float((~rollouts.valid).float().mean())
    metrics["train/reward"] = float(total.mean())
    return total, metrics
