"""Reference slate policies (spec §6.4): random, short-term oracle, epsilon-greedy oracle.

A policy maps the last observation of B users to B slates ``(B, K)`` of item ids, where -1 asks
the simulator's short-term oracle to fill the slot (§1.10). Policies own their randomness (a
``torch.Generator`` seeded by ``seed``), separate from the simulator's user/click streams.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

POLICY_NAMES = ("random", "sto", "eps_oracle")


@runtime_checkable
class SlatePolicy(Protocol):
    """What :func:`rl4rec.slate.evaluate.evaluate_policy` drives (agents implement it too)."""

    def reset(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Start of an episode for a batch of users (the reset observation)."""

    def act(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        """Slates ``(B, K)`` for the users of ``obs`` (ids, or -1 for oracle slots)."""


class _Stateless:
    def __init__(self, num_items: int, rec_size: int = 10, *, seed: int = 0, device: torch.device | str = "cpu"):
        if rec_size > num_items:
            raise ValueError(f"rec_size {rec_size} exceeds num_items {num_items}")
        self.num_items, self.rec_size, self.device = num_items, rec_size, torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def reset(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        return None


class RandomPolicy(_Stateless):
    """10 item ids i.i.d. uniform per slate (official ``RandomSlate``; duplicates possible)."""

    def act(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        batch = obs["slate"].shape[0]
        return torch.randint(self.num_items, (batch, self.rec_size), generator=self.generator, device=self.device)


class ShortTermOracle(_Stateless):
    """All slots -1: the simulator shows each user's current top-K items (greedy, §1.10)."""

    def act(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        return torch.full((obs["slate"].shape[0], self.rec_size), -1, dtype=torch.long, device=self.device)


class EpsGreedyOracle(_Stateless):
    """Per slot, with probability ``epsilon`` a random item, else -1 (the logging policy, §2).

    The random items of a slate are distinct (first K of a random permutation of the catalogue).
    """

    def __init__(self, num_items: int, rec_size: int = 10, *, epsilon: float = 0.5, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(num_items, rec_size, seed=seed, device=device)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def act(self, obs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        batch = obs["slate"].shape[0]
        explore = torch.rand(batch, self.rec_size, generator=self.generator, device=self.device) < self.epsilon
        random = distinct_random_items(batch, self.rec_size, self.num_items, self.generator)
        return torch.where(explore, random, torch.full_like(random, -1))


def distinct_random_items(batch: int, k: int, num_items: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch, k)`` rows of k distinct ids, each row distributed as the first k of a uniform
    random permutation.

    i.i.d. rows conditioned on having no repeat have exactly that distribution, so rows with a
    repeat are redrawn (about 4.5% of rows for k=10, N=1000). When repeats are likely the
    permutation is drawn directly (top-k of uniform noise).
    """
    device = generator.device
    if k * k > num_items:
        noise = torch.rand(batch, num_items, generator=generator, device=device)
        return noise.topk(k, dim=1).indices
    out = torch.randint(num_items, (batch, k), generator=generator, device=device)
    redo = torch.arange(batch, device=device)
    while redo.numel():
        rows = out[redo].sort(dim=1).values
        redo = redo[(rows[:, 1:] == rows[:, :-1]).any(1)]
        if redo.numel():
            out[redo] = torch.randint(num_items, (redo.numel(), k), generator=generator, device=device)
    return out


def make_policy(name: str, num_items: int, rec_size: int = 10, *, epsilon: float = 0.5, seed: int = 0, device: torch.device | str = "cpu") -> SlatePolicy:
    """Build a reference policy by name: ``random``, ``sto`` or ``eps_oracle``."""
    if name == "random":
        return RandomPolicy(num_items, rec_size, seed=seed, device=device)
    if name == "sto":
        return ShortTermOracle(num_items, rec_size, seed=seed, device=device)
    if name == "eps_oracle":
        return EpsGreedyOracle(num_items, rec_size, epsilon=epsilon, seed=seed, device=device)
    raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_NAMES)}")
