"""Statistics across seeds: mean with a Student-t confidence interval, Welch's and the paired t-test.

The GeMS paper's protocol (spec slate_rl.md §7.4): one number per seed; the 95% half-width is
``t_{0.975, n-1} * s / sqrt(n)`` with the n-1 sample std; significance by Welch's two-sided
unequal-variance t-test at p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class MeanCI:
    """Mean over seeds with a two-sided confidence half-width (nan for a single seed)."""

    mean: float
    half_width: float
    std: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def format(self, digits: int = 4) -> str:
        if self.n < 2 or not math.isfinite(self.half_width):
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} ± {self.half_width:.{max(digits - 1, 1)}g}"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence half-width of per-seed values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"mean_ci needs a non-empty 1-d sequence, got shape {x.shape}")
    n = int(x.size)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, float("nan"), float("nan"), n)
    std = float(x.std(ddof=1))
    t = float(_st.t.ppf(0.5 + confidence / 2, df=n - 1))
    return MeanCI(mean, t * std / math.sqrt(n), std, n)


def _degenerate(diff: float) -> tuple[float, float]:
    """(t, p) when neither sample varies: t = ±inf in the direction of the difference (p = 0), or
    t = 0 and p = 1 when there is no difference."""
    return (math.copysign(math.inf, diff), 0.0) if diff != 0 else (0.0, 1.0)


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's unequal-variance two-sided t-test: (t statistic, p-value); nan when undefined."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return float("nan"), float("nan")
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:  # no spread: the sign of the difference, or no difference
        return _degenerate(float(a.mean() - b.mean()))
    res = _st.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired t-test of ``a[i]`` against ``b[i]`` (e.g. the same seeds and users under two
    settings): (t statistic, p-value); nan when undefined."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size < 2:
        return float("nan"), float("nan")
    if d.std(ddof=1) == 0:
        return _degenerate(float(d.mean()))
    res = _st.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)
