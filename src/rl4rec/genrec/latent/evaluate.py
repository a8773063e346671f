"""Title-level evaluation: beam search -> title groups -> HR/NDCG with intervals, popularity
groups, and the MostPop baseline (spec latent_reasoning.md §3.3, §5, §6.6).

One batched evaluator over the full split by default (the release evaluated shards in separate
processes and sub-sampled some test sets silently); any sub-sampling is explicit (``rows``).
Every metric carries a 95% interval over rows (``<metric>_ci95``, Student t: the rows are
independent draws); per-row ranks are returned so two models can be compared with a paired test
on the same rows (:func:`paired_test`). Title ambiguity is reported with every result:
``ambiguous_targets`` (share of rows whose target title is shared by several items, so a hit may
be another item) and ``ambiguous_hits@10``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rl4rec.genrec.latent.decode import title_beam_search
from rl4rec.genrec.latent.prompts import encode_prompt
from rl4rec.genrec.latent.titles import TitleIndex, TitleTrie
from rl4rec.metrics.popularity import (
    grouped_metrics,
    history_popularity,
    item_popularity,
    popularity_groups,
    target_popularity,
)
from rl4rec.metrics.ranking import ranking_metrics, ranks_from_lists
from rl4rec.metrics.stats import mean_ci

__all__ = ["encode_prompts", "predict_titles", "title_metrics", "row_groups", "most_popular_lists", "paired_test", "KS"]

KS = (1, 3, 5, 10)


def encode_prompts(examples: Sequence, catalog, tokenizer, c: str, template: str, max_len: int) -> list[list[int]]:
    return [encode_prompt(tokenizer, [catalog.title(i) for i in ex.history], c, template, max_len) for ex in examples]


def predict_titles(
    llm, prompts: Sequence[Sequence[int]], trie: TitleTrie, *, beams: int, batch_size: int, pad_id: int, progress: bool = False, desc: str = "decode", length_penalty: float = 1.0
) -> np.ndarray:
    """``(rows, beams)`` title groups in beam-score order (``-1`` = fewer titles than beams).
    Prompts are batched by length (less padding) and put back in order."""
    from rl4rec.progress import track

    was = llm.training
    llm.eval()
    order = np.argsort([len(p) for p in prompts], kind="stable")
    out = np.full((len(prompts), beams), -1, dtype=np.int64)
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in track(chunks, desc=desc, enabled=progress, unit="batch"):
        res = title_beam_search(llm, [prompts[i] for i in chunk], trie, num_beams=beams, pad_id=pad_id, length_penalty=length_penalty)
        out[chunk] = res.groups.cpu().numpy()
    llm.train(was)
    return out


def _with_ci(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out = ranking_metrics(ranks, ks, metrics=("hr", "ndcg"))
    for k in ks:
        hit = (ranks < k).astype(np.float64)
        out[f"hr@{k}_ci95"] = mean_ci(hit).half_width if hit.size > 1 else float("nan")
        out[f"ndcg@{k}_ci95"] = mean_ci(hit / np.log2(ranks + 2.0)).half_width if hit.size > 1 else float("nan")
    return out


def title_metrics(pred: np.ndarray, target_groups: np.ndarray, shared_target: np.ndarray, *, ks: Sequence[int] = KS, groups: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """(metrics, per-row 0-based rank of the first hit, ``beams`` = miss)."""
    ks = [k for k in ks if k <= pred.shape[1]]  # a list of M titles says nothing about K > M
    ranks = ranks_from_lists(pred, target_groups).astype(np.int64)
    m: dict[str, Any] = _with_ci(ranks, ks)
    m["rows"] = int(ranks.size)
    # -1 after a row's last title pads a list shorter than the beams; a -1 before a title is invalid
    valid = pred >= 0
    trailing = np.flip(np.cumsum(np.flip(valid, 1), 1), 1) == 0  # no title at or after this slot
    m["invalid"] = int((~valid & ~trailing).sum())
    m["padded_slots"] = int((~valid & trailing).sum())
    m["ambiguous_targets"] = float(shared_target.mean()) if shared_target.size else 0.0
    # a miss has rank = beams, so "hit within 10" must also be a hit at all when beams < 10
    m["ambiguous_hits@10"] = int(((ranks < min(10, pred.shape[1])) & shared_target).sum())
    if groups is not None:
        m["popularity_groups"] = {
            g: {**v, **{key: val for key, val in _with_ci(ranks[groups == int(g[5:]) - 1], ks).items() if key.endswith("_ci95")}}
            for g, v in grouped_metrics(ranks, groups, ks, metrics=("hr", "ndcg")).items()
        }
    return m, ranks


def row_groups(train: Sequence, rows: Sequence, num_items: int, *, n_groups: int = 3, by: str = "history") -> np.ndarray:
    """Popularity group per row (0 = most popular): item popularity counted on the **training**
    rows' histories and targets (the release counted the test file's history titles), summed
    over each row's history (``by="history"``, the release's grouping) or the row's target."""
    pop = item_popularity((ex.history for ex in train), (ex.target_item_id for ex in train), num_items=num_items)
    if by == "history":
        score = history_popularity((ex.history for ex in rows), pop)
    elif by == "target":
        score = target_popularity([ex.target_item_id for ex in rows], pop)
    else:
        raise ValueError(f"group_by must be 'history' or 'target', got {by!r}")
    return popularity_groups(score, n_groups)


def most_popular_lists(source: Sequence, index: TitleIndex, rows: int, k: int = 10) -> np.ndarray:
    """MostPop (spec §6.6): the ``k`` title groups most frequent among ``source``'s targets, ties
    broken by first appearance in ``source`` (as ``collections.Counter.most_common``, which
    reproduces the spec's measured numbers), the same list for every row."""
    seen = index.group_of_item[[ex.target_item_id for ex in source]]
    groups, first, counts = np.unique(seen, return_index=True, return_counts=True)
    top = groups[np.lexsort((first, -counts))][:k]
    return np.broadcast_to(top, (rows, len(top))).copy()


def paired_test(ranks_a: np.ndarray, ranks_b: np.ndarray, k: int = 10) -> dict[str, float]:
    """Paired comparison of two models on the same rows: difference of NDCG@k (a - b) with its 95%
    interval (t over the per-row differences) and the McNemar exact p-value of HR@k."""
    from scipy.stats import binomtest

    na = np.where(ranks_a < k, 1.0 / np.log2(ranks_a + 2.0), 0.0)
    nb = np.where(ranks_b < k, 1.0 / np.log2(ranks_b + 2.0), 0.0)
    d = mean_ci(na - nb)
    only_a, only_b = int(((ranks_a < k) & (ranks_b >= k)).sum()), int(((ranks_b < k) & (ranks_a >= k)).sum())
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return {f"ndcg@{k}_diff": d.mean, f"ndcg@{k}_diff_ci95": d.half_width, f"hr@{k}_only_a": only_a, f"hr@{k}_only_b": only_b, "mcnemar_p": float(p)}

