"""Return statistics of a slate policy over a population of simulated users (spec §7.3)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from rl4rec.slate.env.simulator import TopicRecSimulator

#: users of the paper's test protocol
TEST_USERS = 500


@dataclass(frozen=True)
class ReturnStats:
    """Mean, sample std (n-1) and SEM = std / sqrt(n) of the per-user 100-turn return."""

    mean: float
    std: float
    sem: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, returns: torch.Tensor) -> ReturnStats:
        n = int(returns.numel())
        std = float(returns.double().std()) if n > 1 else 0.0
        return cls(float(returns.double().mean()), std, std / math.sqrt(n), n)


@torch.no_grad()
def episode_returns(
    sim: TopicRecSimulator,
    policy: Any,
    users: int = TEST_USERS,
    *,
    seed: int | None = None,
    user_offset: int = 0,
    population: str = "test",
    batch_size: int | None = None,
) -> torch.Tensor:
    """``(users,)`` returns of full episodes (reset + H steps) of ``policy``.

    ``policy`` has ``act(obs, info) -> slates`` (and optionally ``reset(obs, info)``) or is a
    plain callable ``(obs, info) -> slates``. Users are run in batches of ``batch_size`` (all at
    once by default); thanks to per-user random streams the result does not depend on it.
    """
    act = getattr(policy, "act", policy)
    start = getattr(policy, "reset", None)
    batch_size = batch_size or users
    out = []
    for first in range(0, users, batch_size):
        n = min(batch_size, users - first)
        obs, info = sim.reset(n, seed=seed, user_offset=user_offset + first, population=population)
        if start is not None:
            start(obs, info)
        total = torch.zeros(n, device=sim.device)
        done = False
        while not done:
            obs, reward, done, info = sim.step(act(obs, info))
            total += reward
        out.append(total)
    return torch.cat(out).cpu()


def evaluate_policy(sim: TopicRecSimulator, policy: Any, users: int = TEST_USERS, **kwargs: Any) -> ReturnStats:
    """Mean, std and SEM of the return over ``users`` test users (see :func:`episode_returns`)."""
    return ReturnStats.of(episode_returns(sim, policy, users, **kwargs))
