"""Ranking, popularity-group and seed-statistics metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rl4rec.metrics.popularity import (
    grouped_metrics,
    history_popularity,
    item_popularity,
    popularity_groups,
    target_popularity,
)
from rl4rec.metrics.ranking import (
    ambiguous_hits,
    hit_rate,
    list_quality,
    mrr,
    ndcg,
    ranking_metrics,
    ranks_from_lists,
    ranks_from_scores,
)
from rl4rec.metrics.stats import mean_ci, welch_ttest

SCORES = [[0.1, 0.5, 0.3, 0.5], [1.0, 2.0, 3.0, 4.0], [0.9, 0.2, 0.2, 0.0]]
TARGETS = [3, 0, 0]


def test_ranks_from_scores_and_tie_rules():
    # row 0: target 3 (0.5) ties with item 1 (0.5): by id it comes second; row 1: 3 items above.
    assert ranks_from_scores(np.array(SCORES), np.array(TARGETS)).tolist() == [1, 3, 0]
    assert ranks_from_scores(np.array(SCORES), np.array(TARGETS), ties="optimistic").tolist() == [0, 3, 0]
    assert ranks_from_scores(np.array(SCORES), np.array(TARGETS), ties="pessimistic").tolist() == [1, 3, 0]
    out = ranks_from_scores(torch.tensor(SCORES), torch.tensor([1, 1, 2]))
    assert isinstance(out, torch.Tensor) and out.tolist() == [0, 2, 2]  # item 2 ties item 1 at 0.2, id 2 > 1
    with pytest.raises(ValueError, match="target ids"):
        ranks_from_scores(np.array(SCORES), np.array([4, 0, 0]))


def test_metric_values_by_hand():
    ranks = np.array([1, 3, 0])
    assert hit_rate(ranks, 1) == pytest.approx(1 / 3)
    assert hit_rate(ranks, 2) == pytest.approx(2 / 3)
    assert ndcg(ranks, 1) == pytest.approx(1 / 3)
    # rank 1 -> 1/log2(3); rank 0 -> 1; rank 3 is outside @3
    assert ndcg(ranks, 3) == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert ndcg(ranks, 4) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5) + 1) / 3)
    assert mrr(ranks) == pytest.approx((1 / 2 + 1 / 4 + 1) / 3)
    assert mrr(ranks, 2) == pytest.approx((1 / 2 + 1) / 3)
    m = ranking_metrics(ranks, (1, 3), prefix="test/")
    assert set(m) == {"test/hr@1", "test/hr@3", "test/ndcg@1", "test/ndcg@3", "test/mrr@1", "test/mrr@3"}
    assert m["test/hr@3"] == pytest.approx(2 / 3)


def test_generated_lists_with_invalid_and_duplicates():
    cands = np.array([[5, -1, 3, 3], [2, 2, 7, 1]])
    ranks = ranks_from_lists(cands, np.array([3, 9]))
    assert ranks.tolist() == [2, 4]  # 9 is absent: rank = list length, a miss for every K <= 4
    assert ranking_metrics(ranks, (1, 3), metrics=("hr",), num_candidates=4) == {"hr@1": 0.0, "hr@3": 0.5}
    with pytest.raises(ValueError, match="exceeds the 4 candidates"):
        ranking_metrics(ranks, (5,), num_candidates=4)
    q = list_quality(cands, num_items=10)
    assert q["invalid_rate"] == pytest.approx(1 / 8)
    assert q["duplicate_rate"] == pytest.approx(2 / 8)  # the second 3 of row 0, the second 2 of row 1
    assert q["coverage"] == pytest.approx(5 / 10)  # {1, 2, 3, 5, 7}
    # items 3 and 5 share a SID: the 5 at position 0 is an (ambiguous) hit for target 3
    groups = np.array([0, 1, 2, 3, 4, 3, 6, 7, 8, 9])
    assert ranks_from_lists(cands, np.array([3, 9]), groups=groups).tolist() == [0, 4]
    assert ambiguous_hits(cands, np.array([3, 9]), groups) == 1
    assert ambiguous_hits(cands, np.array([3, 9]), np.arange(10)) == 0
    assert list_quality(np.array([[10, 0]]), num_items=10)["invalid_rate"] == 0.5


def test_popularity_groups_by_hand():
    pop = item_popularity([[0, 1], [1]], [1, 2], num_items=4)
    assert pop.tolist() == [1, 3, 1, 0]
    assert history_popularity([[1, 2], [3], [0, 0]], pop).tolist() == [4.0, 0.0, 2.0]
    assert target_popularity([1, 3], pop).tolist() == [3.0, 0.0]
    # 7 rows into 3 groups of floor(7/3)=2, 2 and the remainder 3; ties keep file order
    groups = popularity_groups([5, 1, 3, 3, 0, 9, 2], 3)
    assert groups.tolist() == [0, 2, 1, 1, 2, 0, 2]
    res = grouped_metrics(np.array([0, 5, 1, 20, 0, 2, 0]), groups, ks=(1, 3))
    assert res["group1"]["size"] == 2 and res["group1"]["hr@1"] == 0.5 and res["group1"]["hr@3"] == 1.0
    assert res["group2"]["size"] == 2 and res["group2"]["hr@3"] == 0.5
    assert res["group3"]["size"] == 3 and res["group3"]["hr@1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="item ids"):
        item_popularity([[4]], num_items=4)


def test_seed_statistics_by_hand():
    ci = mean_ci([1.0, 2.0, 3.0])
    # mean 2, s = 1, t_{0.975, 2} = 4.302653: half-width 4.302653 / sqrt(3)
    assert ci.mean == 2.0 and ci.half_width == pytest.approx(2.4841377, rel=1e-6)
    t, p = welch_ttest([1, 2, 3], [4, 5, 6, 7])
    # t = (2 - 5.5) / sqrt(1/3 + (5/3)/4) = -3.5 / sqrt(0.75); Welch df = 4.959
    assert t == pytest.approx(-3.5 / math.sqrt(0.75))
    assert p == pytest.approx(0.0100769, rel=1e-4)


def test_paired_ttest_edges():
    from rl4rec.metrics.stats import paired_ttest

    assert paired_ttest([1.0, 2.0], [0.0, 1.0]) == (float("inf"), 0.0)  # a constant shift is certain
    assert paired_ttest([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)  # no difference at all: t = 0, not undefined
    assert all(math.isnan(v) for v in paired_ttest([1.0], [0.0]))  # one pair: undefined
