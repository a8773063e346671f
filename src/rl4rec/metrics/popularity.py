"""Popularity-grouped evaluation (spec latent_reasoning.md §5).

The LatentR³ release cuts the test rows into three groups by the *popularity of the user's
history* (the sum of its items' popularities), Group 1 = most popular, and reports HR/NDCG per
group. It counts popularity on the test file's history titles; here popularity is counted on the
training rows by default (item ids, never split title text), both history and target grouping
are offered, any number of groups, and the group sizes are reported.

    pop = item_popularity(train_histories, train_targets, num_items=N)
    groups = popularity_groups(history_popularity(test_histories, pop), n_groups=3)
    grouped_metrics(ranks, groups, ks=(1, 3, 5, 10))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rl4rec.metrics.ranking import ranking_metrics

__all__ = [
    "item_popularity",
    "history_popularity",
    "target_popularity",
    "popularity_groups",
    "grouped_metrics",
]


def item_popularity(
    histories: Iterable[Sequence[int]] = (), targets: Iterable[int] = (), *, num_items: int
) -> np.ndarray:
    """Occurrences of each item id in the given history lists plus the given targets, ``(N,)``."""
    ids = np.asarray([i for h in histories for i in h] + [int(t) for t in targets], dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= num_items):
        raise ValueError(f"item ids must lie in [0, {num_items}), got range [{ids.min()}, {ids.max()}]")
    return np.bincount(ids, minlength=num_items).astype(np.int64)


def history_popularity(histories: Iterable[Sequence[int]], popularity: np.ndarray) -> np.ndarray:
    """Per row: the sum of the popularities of its history items (the release's "activity")."""
    pop = np.asarray(popularity)
    return np.asarray([float(pop[list(h)].sum()) if len(h) else 0.0 for h in histories], dtype=np.float64)


def target_popularity(targets: Sequence[int] | np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per row: the popularity of its target item."""
    return np.asarray(popularity, dtype=np.float64)[np.asarray(targets, dtype=np.int64)]


def popularity_groups(scores: Sequence[float] | np.ndarray, n_groups: int = 3) -> np.ndarray:
    """Group id per row (0 = most popular): rows sorted by score, descending (stable, so ties keep
    file order), cut into ``n_groups`` consecutive parts of ``floor(N / n_groups)`` rows; the last
    part takes the remainder."""
    s = np.asarray(scores, dtype=np.float64)
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    n = s.size
    order = np.argsort(-s, kind="stable")
    size = n // n_groups
    group_of_pos = np.minimum(np.arange(n) // max(size, 1), n_groups - 1) if size else np.zeros(n, np.int64)
    groups = np.empty(n, dtype=np.int64)
    groups[order] = group_of_pos
    return groups


def grouped_metrics(
    ranks: Any, groups: Sequence[int] | np.ndarray, ks: Iterable[int] = (1, 3, 5, 10), **kwargs: Any
) -> dict[str, dict[str, float]]:
    """``{"group1": {"size": n, "hr@1": ..., ...}, "group2": ...}`` (group1 = most popular)."""
    r = ranks.detach().cpu().numpy() if hasattr(ranks, "detach") else np.asarray(ranks)
    g = np.asarray(groups)
    if r.shape != g.shape:
        raise ValueError(f"ranks and groups must have the same shape, got {r.shape} and {g.shape}")
    ks = tuple(ks)
    out: dict[str, dict[str, float]] = {}
    for gid in range(int(g.max()) + 1 if g.size else 0):
        sel = r[g == gid]
        out[f"group{gid + 1}"] = {"size": int(sel.size), **ranking_metrics(sel, ks, **kwargs)}
    return out
