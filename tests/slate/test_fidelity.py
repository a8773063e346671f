"""Fidelity oracles (spec §1.14): faithful Random and STO returns on the 500 test users must lie
within ±3 SEM of the official simulator's. Exact equality is not expected: our user and click
streams are counter-based, not the official torch.Generator sequence (§1.12)."""

from __future__ import annotations

import math

import pytest

from rl4rec.slate.evaluate import evaluate_policy
from rl4rec.slate.policies import RandomPolicy, ShortTermOracle
from tests.slate.conftest import released

# env -> (random mean, random std, STO mean, STO std), official simulator, 500 test users
OFFICIAL = {
    "focused_topdown": (34.20, 7.07, 104.11, 43.71),
    "focused_mix": (33.99, 6.66, 101.53, 42.76),
    "focused_divpen": (31.73, 6.51, 76.59, 21.89),
}


@pytest.mark.parametrize("env", list(OFFICIAL))
def test_random_and_short_term_oracle_match_official(shared_data, env):
    sim = released(shared_data, env)
    rand_mean, rand_std, sto_mean, sto_std = OFFICIAL[env]
    for policy, mean, std in ((RandomPolicy(1000, seed=58407201), rand_mean, rand_std), (ShortTermOracle(1000), sto_mean, sto_std)):
        stats = evaluate_policy(sim, policy, 500, population="test")
        sem = std / math.sqrt(500)
        assert stats.n == 500
        assert abs(stats.mean - mean) <= 3 * sem, f"{env} {type(policy).__name__}: {stats.mean:.2f} vs {mean} ± {sem:.2f}"
        assert 0.8 < stats.std / std < 1.2
