"""Ranking metrics from the rank of the single relevant item: HR@K, NDCG@K, MRR@K.

Every recommender in rl4rec is evaluated the same way (spec genrec.md §8): for each test row
there is one target item; a model either scores *all* items (full ranking: SASRec, GRU4Rec,
popularity) or emits a top-M list of item ids (constrained beam search of an LM). Both reduce to
the 0-based rank ``r`` of the target (``r = 0`` is the top):

    HR@K   = mean 1[r < K]
    NDCG@K = mean 1[r < K] / log2(r + 2)        (one relevant item, so IDCG = 1)
    MRR@K  = mean 1[r < K] / (r + 1)

A target missing from a generated list gets rank ``M`` (the list length), which is a miss for
every admissible ``K <= M``; asking for ``K > M`` is an error, never a silent under-count.

Inputs may be numpy arrays or torch tensors; ranks come back as the same kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "ranks_from_scores",
    "ranks_from_lists",
    "hit_rate",
    "ndcg",
    "mrr",
    "ranking_metrics",
    "list_quality",
    "ambiguous_hits",
    "DEFAULT_KS",
]

DEFAULT_KS = (1, 3, 5, 10, 20)


def _to_torch(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _like(t: torch.Tensor, ref: Any) -> Any:
    return t if isinstance(ref, torch.Tensor) else t.cpu().numpy()


def ranks_from_scores(scores: Any, targets: Any, *, ties: str = "id") -> Any:
    """0-based rank of ``targets[b]`` among all items by ``scores[b]`` (higher is better).

    Args:
        scores: ``(B, N)`` scores over the full catalog.
        targets: ``(B,)`` target item ids in ``[0, N)``.
        ties: how equal scores are ordered. ``"id"`` (default): a lower item id ranks first, as in
            a stably sorted top-K list, so ranks are what a user of the list would see.
            ``"pessimistic"``: the target ranks after every item with an equal score.
            ``"optimistic"``: before them.
    Returns:
        ``(B,)`` int64 ranks, numpy or torch like ``scores``.
    """
    s = _to_torch(scores)
    t = _to_torch(targets, torch.long).to(s.device)
    if s.ndim != 2 or t.ndim != 1 or s.shape[0] != t.shape[0]:
        raise ValueError(f"scores must be (B, N) and targets (B,), got {tuple(s.shape)} and {tuple(t.shape)}")
    n = s.shape[1]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"target ids must lie in [0, {n}), got range [{int(t.min())}, {int(t.max())}]")
    target_score = s.gather(1, t[:, None])
    greater = (s > target_score).sum(1)
    if ties == "optimistic":
        ranks = greater
    elif ties == "pessimistic":
        ranks = greater + (s == target_score).sum(1) - 1
    elif ties == "id":
        before = torch.arange(n, device=s.device)[None, :] < t[:, None]
        ranks = greater + ((s == target_score) & before).sum(1)
    else:
        raise ValueError(f"ties must be 'id', 'pessimistic' or 'optimistic', got {ties!r}")
    return _like(ranks.long(), scores)


def ranks_from_lists(candidates: Any, targets: Any, *, groups: Any = None) -> Any:
    """0-based rank of the first candidate equal to the target; ``M`` (list length) when absent.

    Args:
        candidates: ``(B, M)`` generated item ids in order; ``-1`` marks an invalid generation
            (e.g. a SID not in the catalog). Invalid entries and duplicates stay in the list
            and count as misses (spec §8).
        targets: ``(B,)`` target item ids.
        groups: optional ``(N,)`` group id per item (e.g. the index of the item's SID among the
            distinct SIDs). A candidate then hits when it is in the target's group, so items that
            share a SID count as hits (spec §8, "ambiguous hits").
    """
    c = _to_torch(candidates, torch.long)
    t = _to_torch(targets, torch.long).to(c.device)
    if c.ndim != 2 or t.ndim != 1 or c.shape[0] != t.shape[0]:
        raise ValueError(f"candidates must be (B, M) and targets (B,), got {tuple(c.shape)} and {tuple(t.shape)}")
    m = c.shape[1]
    if groups is None:
        hit = c == t[:, None]
    else:
        g = _to_torch(groups, torch.long).to(c.device)
        hit = (c >= 0) & (g[c.clamp(min=0)] == g[t][:, None])  # an invalid candidate (-1) never hits
    pos = torch.arange(m, device=c.device).expand_as(c)
    ranks = torch.where(hit, pos, torch.full_like(pos, m)).min(1).values if m else torch.zeros_like(t)
    return _like(ranks.long(), candidates)


def ambiguous_hits(candidates: Any, targets: Any, groups: Any, k: int | None = None) -> int:
    """Rows whose first hit within the top ``k`` is another item of the target's SID group
    (a hit only because SIDs collide; spec §8 asks to report their number)."""
    exact = _ranks_np(ranks_from_lists(candidates, targets))
    grouped = _ranks_np(ranks_from_lists(candidates, targets, groups=groups))
    ambiguous = grouped < exact
    if k is not None:
        ambiguous &= grouped < k
    return int(ambiguous.sum())


def _ranks_np(ranks: Any) -> np.ndarray:
    r = ranks.detach().cpu().numpy() if isinstance(ranks, torch.Tensor) else np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-d, got shape {r.shape}")
    return r.astype(np.int64)


def _mean_at_k(ranks: Any, k: int | None, num_candidates: int | None, gain) -> float:
    """Mean over rows of ``gain(rank)`` where rank < K and 0 elsewhere (``k=None``: no cut-off)."""
    if k is not None and k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    if k is not None and num_candidates is not None and k > num_candidates:
        raise ValueError(f"K={k} exceeds the {num_candidates} candidates per row (K must be <= beams)")
    r = _ranks_np(ranks)
    if not r.size:
        return float("nan")
    return float(np.where(r < k if k is not None else True, gain(r), 0.0).mean())


def hit_rate(ranks: Any, k: int, *, num_candidates: int | None = None) -> float:
    """HR@K = fraction of rows whose target rank is < K."""
    return _mean_at_k(ranks, k, num_candidates, lambda r: 1.0)


def ndcg(ranks: Any, k: int, *, num_candidates: int | None = None) -> float:
    """NDCG@K with one relevant item: mean of 1/log2(rank + 2) over rows with rank < K."""
    return _mean_at_k(ranks, k, num_candidates, lambda r: 1.0 / np.log2(r + 2.0))


def mrr(ranks: Any, k: int | None = None, *, num_candidates: int | None = None) -> float:
    """MRR@K (``k=None``: no cut-off) = mean of 1/(rank + 1) over rows with rank < K."""
    return _mean_at_k(ranks, k, num_candidates, lambda r: 1.0 / (r + 1.0))


def ranking_metrics(
    ranks: Any,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    metrics: Iterable[str] = ("hr", "ndcg", "mrr"),
    prefix: str = "",
    num_candidates: int | None = None,
) -> dict[str, float]:
    """``{prefix + "hr@10": ..., prefix + "ndcg@10": ..., ...}`` for every K and metric.

    ``num_candidates``: the list length for generated lists; every K must be <= it.
    """
    fns = {"hr": hit_rate, "ndcg": ndcg, "mrr": mrr}
    metrics = tuple(metrics)
    for name in metrics:
        if name not in fns:
            raise ValueError(f"unknown ranking metric {name!r}; choose from {sorted(fns)}")
    return {f"{prefix}{name}@{k}": fns[name](ranks, k, num_candidates=num_candidates) for name in metrics for k in ks}


def list_quality(candidates: Any, num_items: int | None = None) -> Mapping[str, float]:
    """Quality of generated top-M lists: invalid rate, duplicate rate and item coverage.

    Args:
        candidates: ``(B, M)`` item ids; ``-1`` (or any id outside ``[0, num_items)``) is invalid.
        num_items: catalog size, for the range check and the coverage denominator.
    Returns:
        ``invalid_rate``: invalid entries / all entries.
        ``duplicate_rate``: valid entries that repeat an earlier valid entry of the same row /
        all entries.
        ``coverage``: distinct valid items over all rows / ``num_items`` (nan without it).
    """
    c = _to_torch(candidates, torch.long)
    if c.ndim != 2:
        raise ValueError(f"candidates must be (B, M), got {tuple(c.shape)}")
    total = c.numel()
    if total == 0:
        return {"invalid_rate": float("nan"), "duplicate_rate": float("nan"), "coverage": float("nan")}
    ok = c >= 0
    if num_items is not None:
        ok &= c < num_items
    # A duplicate: an equal valid entry earlier in the same row. Sort each row and compare
    # neighbours; every entry of a run of k equal ids but one is a duplicate.
    marked = torch.where(ok, c, torch.full_like(c, -1))
    srt = marked.sort(1).values
    same = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    duplicates = int(same.sum())
    distinct = torch.unique(c[ok]).numel()
    return {
        "invalid_rate": float((~ok).sum()) / total,
        "duplicate_rate": duplicates / total,
        "coverage": distinct / num_items if num_items else float("nan"),
    }
