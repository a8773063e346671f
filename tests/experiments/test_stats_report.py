"""Report statistics against scipy on known numbers, and the report's marks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rl4rec.experiments.report import RunRecord, metric_table, parameters
from rl4rec.metrics.stats import mean_ci, welch_ttest


def test_mean_ci_matches_scipy_and_hand_value():
    x = [305.1, 298.7, 311.2, 301.9, 309.4]
    ci = mean_ci(x)
    lo, hi = stats.t.interval(0.95, df=len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert ci.mean == pytest.approx(np.mean(x))
    assert ci.low == pytest.approx(lo) and ci.high == pytest.approx(hi)
    # by hand: mean 305.26, s = 5.1233..., t_{0.975,4} = 2.776445, half = t * s / sqrt(5)
    assert ci.half_width == pytest.approx(2.776445 * np.std(x, ddof=1) / np.sqrt(5), rel=1e-6)
    single = mean_ci([3.0])
    assert single.mean == 3.0 and np.isnan(single.half_width) and single.format() == "3"


def test_welch_matches_scipy():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.5, 3.5, 4.5, 6.0, 7.0]
    t, p = welch_ttest(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    # Welch's t by hand: (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b)
    hand = (2.5 - 4.7) / np.sqrt(np.var(a, ddof=1) / 4 + np.var(b, ddof=1) / 5)
    assert t == pytest.approx(hand)


def _rec(method, column, seed, value, **cfg):
    return RunRecord(f"{method}_{column}_{seed}", method, column, seed, "finished", {"test/return": value}, {"seed": seed, **cfg})


def test_metric_table_best_dagger_and_p_values():
    recs = [_rec("gems", "td", s, v) for s, v in enumerate([300.0, 310.0, 305.0])]
    recs += [_rec("topk", "td", s, v) for s, v in enumerate([250.0, 240.0, 260.0])]
    recs += [_rec("close", "td", s, v) for s, v in enumerate([301.0, 299.0, 312.0])]
    table = metric_table(recs, "test/return")
    cells = table["cells"]
    assert cells[("gems", "td")]["best"] and not cells[("topk", "td")]["best"]
    # gems is not significantly better than 'close', so no dagger
    assert not cells[("gems", "td")]["dagger"]
    assert cells[("topk", "td")]["p_vs_best"] == pytest.approx(
        stats.ttest_ind([300, 310, 305], [250, 240, 260], equal_var=False).pvalue
    )
    table2 = metric_table([r for r in recs if r.method != "close"], "test/return")
    assert table2["cells"][("gems", "td")]["dagger"]


def test_lower_is_better_metrics():
    recs = [_rec("a", "x", s, v) for s, v in enumerate([1.0, 1.1])] + [_rec("b", "x", s, v) for s, v in enumerate([2.0, 2.1])]
    for r in recs:
        r.results = {"eval/loss": r.results["test/return"]}
    assert metric_table(recs, "eval/loss")["cells"][("a", "x")]["best"]


def test_parameters_shared_vs_differing():
    recs = [_rec("a", "x", 0, 1.0, lr=0.1, gamma=0.8), _rec("a", "x", 1, 1.0, lr=0.1, gamma=0.8), _rec("b", "x", 0, 1.0, lr=0.2, gamma=0.8)]
    shared, per_method = parameters(recs)
    assert shared == {"gamma": 0.8}
    assert per_method == {"a": {"lr": 0.1}, "b": {"lr": 0.2}}


def test_batched_seed_runs_count_one_sample_per_seed(tmp_path):
    import json

    from rl4rec.experiments.report import collect

    run = tmp_path / "exp" / "sac-gems_seeds1+2_seed0"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "finished"}))
    (run / "config.yaml").write_text("seed: 0\nseeds: [1, 2]\n")
    (run / "test_results.json").write_text(json.dumps({"test/return": 150.0, "test/return_per_seed": {"1": 100.0, "2": 200.0}}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "eval/return": 5.0, "eval/return_seed1": 4.0, "eval/return_seed2": 6.0}) + "\n")
    records, _ = collect(tmp_path / "exp")
    assert sorted((r.seed, r.results["test/return"]) for r in records) == [(1, 100.0), (2, 200.0)]
    assert {r.seed: r.curves["eval/return"] for r in records} == {1: [(10, 4.0)], 2: [(10, 6.0)]}
    cell = metric_table(records, "test/return")["cells"][(records[0].method, "all")]
    assert cell["ci"].n == 2 and cell["ci"].mean == 150.0


def test_tests_without_spread_keep_the_direction():
    """Zero variance: t is +inf or -inf with the sign of a - b (p = 0), and 0 with p = 1 for equal samples."""
    from rl4rec.metrics.stats import paired_ttest

    assert welch_ttest([2.0, 2.0], [1.0, 1.0]) == (float("inf"), 0.0)
    assert welch_ttest([1.0, 1.0], [2.0, 2.0]) == (float("-inf"), 0.0)
    assert welch_ttest([1.0, 1.0], [1.0, 1.0]) == (0.0, 1.0)
    assert paired_ttest([1.0, 2.0], [2.0, 3.0]) == (float("-inf"), 0.0)  # every difference is -1
    assert paired_ttest([3.0, 5.0], [2.0, 4.0]) == (float("inf"), 0.0)
    assert paired_ttest([3.0, 5.0], [3.0, 5.0]) == (0.0, 1.0)


def test_non_finite_seeds_are_left_out_and_said(caplog):
    """A NaN seed is not averaged in, and the report cell and the log say how many were left out."""
    from rl4rec.experiments.report import _metric_tables

    recs = [_rec("a", "x", s, v) for s, v in enumerate([1.0, 3.0, float("nan")])] + [_rec("b", "x", s, v) for s, v in enumerate([float("inf")] * 2)]
    with caplog.at_level("WARNING"):
        table = metric_table(recs, "test/return")
    assert table["cells"][("a", "x")]["ci"].mean == 2.0 and table["cells"][("a", "x")]["ci"].n == 2
    assert table["nonfinite"] == {("a", "x"): 1, ("b", "x"): 2}
    assert "1 run(s) of a @ x have a non-finite value" in caplog.text and "2 run(s) of b @ x" in caplog.text
    md = "\n".join(_metric_tables([table]))
    assert "(n=2)** ⚠ 1 non-finite left out" in md and "| b | — ⚠ 2 non-finite left out |" in md


def test_curve_band_by_hand():
    """Steps common to every seed only; the CI half-width is t(0.975, n-1) * sd / sqrt(n), 0 for one seed."""
    from rl4rec.experiments.report import curve_band

    steps, mean, half = curve_band([{0: 1.0, 10: 3.0}, {0: 3.0, 10: 5.0, 20: 9.0}])
    assert (steps, mean) == ([0, 10], [2.0, 4.0])
    assert half == pytest.approx([12.7062047, 12.7062047])  # sd = sqrt(2), n = 2
    assert curve_band([{5: 7.0}]) == ([5], [7.0], [0.0]) and curve_band([]) == ([], [], [])
