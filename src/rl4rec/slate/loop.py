"""The one episode loop shared by every slate agent (training, validation and test).

S ensemble members (seeds) x B users are stepped as one simulator batch of S*B users, member-
major. Every member sees the same users (the agent seed never changes the users, spec §1.12),
so validation and test compare seeds on common random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rl4rec.slate.agents.base import SlateAgent


@dataclass
class Trajectories:
    """Whole episodes, (S, B, T, ...): observations o_0..o_{T-1}, actions, step clicks, rewards, users."""

    slates: torch.Tensor
    clicks: torch.Tensor
    actions: torch.Tensor
    step_clicks: torch.Tensor
    rewards: torch.Tensor
    users: torch.Tensor | None

    @property
    def returns(self) -> torch.Tensor:
        return self.rewards.sum(-1)


@torch.no_grad()
def run_episodes(
    agent: SlateAgent,
    sim,
    user_ids: torch.Tensor,
    num_members: int,
    *,
    population: str,
    deterministic: bool,
    random_phase: bool = False,
    iteration: int = 0,
    record: bool = False,
) -> tuple[torch.Tensor, Trajectories | None]:
    """Run one episode per (member, user); returns per-(member, user) returns (S, B) and, with
    ``record``, the trajectories for the replay buffer."""
    s, b = num_members, int(user_ids.numel())
    obs, _ = sim.reset(s * b, user_ids=user_ids.repeat(s), population=population)
    k, horizon = sim.rec_size, sim.episode_length

    def view(o: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"slate": o["slate"].view(s, b, k), "clicks": o["clicks"].view(s, b, k)}

    o = view(obs)
    state = agent.begin(o)
    rewards = torch.zeros(s, b, horizon)
    if record:
        slates = torch.zeros(s, b, horizon, k, dtype=torch.long)
        clicks = torch.zeros(s, b, horizon, k)
        step_clicks = torch.zeros(s, b, horizon, k)
        actions = torch.zeros(s, b, horizon, *agent.action_shape, dtype=agent.action_dtype)
        users = torch.zeros(s, b, horizon, sim.item_embeddings.shape[1]) if agent.needs_users else None
    for t in range(horizon):  # turns are sequential; members, users and slots are batched
        state, slate, action = agent.act(
            state, o if t else None, deterministic=deterministic, random_phase=random_phase, iteration=iteration, sim=sim
        )
        if record:
            slates[:, :, t], clicks[:, :, t] = o["slate"], o["clicks"]
            actions[:, :, t] = action.to(agent.action_dtype)
        obs, reward, _, info = sim.step(slate.reshape(s * b, k))
        o = view(obs)
        rewards[:, :, t] = reward.view(s, b)
        if record:
            step_clicks[:, :, t] = o["clicks"]
            if users is not None:
                users[:, :, t] = info["user_state"].view(s, b, -1)
    traj = Trajectories(slates, clicks, actions, step_clicks, rewards, users) if record else None
    return rewards.sum(-1), traj
