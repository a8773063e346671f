"""Reference policies: shapes, per-slot epsilon, distinct random items with a uniform law."""

from __future__ import annotations

import pytest
import torch

from rl4rec.slate.policies import EpsGreedyOracle, RandomPolicy, ShortTermOracle, distinct_random_items, make_policy

OBS = {"slate": torch.zeros(4000, 10, dtype=torch.long)}


def test_random_and_sto_shapes():
    slates = RandomPolicy(1000, seed=1).act(OBS, {})
    assert slates.shape == (4000, 10) and slates.min() >= 0 and slates.max() < 1000
    assert torch.equal(RandomPolicy(1000, seed=1).act(OBS, {}), slates)  # seeded
    assert bool((ShortTermOracle(1000).act(OBS, {}) == -1).all())


def test_eps_greedy_is_per_slot():
    slates = EpsGreedyOracle(1000, epsilon=0.3, seed=2).act(OBS, {})
    random_slots = slates >= 0
    assert abs(float(random_slots.float().mean()) - 0.3) < 0.01
    # per slot, not per slate: mixed slates are the norm
    mixed = random_slots.any(1) & (~random_slots).any(1)
    assert float(mixed.float().mean()) > 0.9
    assert bool((EpsGreedyOracle(1000, epsilon=0.0).act(OBS, {}) == -1).all())
    with pytest.raises(ValueError, match="epsilon"):
        EpsGreedyOracle(1000, epsilon=1.5)


def test_distinct_random_items_law():
    gen = torch.Generator().manual_seed(3)
    items = distinct_random_items(20_000, 10, 50, gen)  # 50 items: repeats would be frequent
    ordered = items.sort(1).values
    assert not bool((ordered[:, 1:] == ordered[:, :-1]).any())
    # every item equally likely in every slot (first 10 of a uniform permutation): 400 per cell
    counts = torch.zeros(10, 50)
    counts.scatter_add_(1, items.T, torch.ones(10, 20_000))
    assert float(counts.min()) > 300 and float(counts.max()) < 500
    small = distinct_random_items(100, 8, 10, gen)  # k*k > N: permutation path
    assert all(len(set(row.tolist())) == 8 for row in small)


def test_make_policy_names():
    assert isinstance(make_policy("sto", 1000), ShortTermOracle)
    with pytest.raises(ValueError, match="random, sto, eps_oracle"):
        make_policy("greedy", 1000)
