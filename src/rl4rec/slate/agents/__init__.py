"""Slate agents: SAC (+GeMS / TopK), REINFORCE (+SoftMax), SlateQ, and the reference policies."""

from __future__ import annotations

import torch

from rl4rec.slate.agents.base import AgentConfig, SlateAgent, uniform_slates
from rl4rec.slate.agents.reinforce import ReinforceAgent
from rl4rec.slate.agents.sac import SACAgent
from rl4rec.slate.agents.slateq import SlateQAgent
from rl4rec.slate.agents.wknn import WkNNAgent


class ReferenceAgent(SlateAgent):
    """Random (i.i.d. uniform ids) or the short-term oracle (all -1 slots), run under the same protocol."""

    action_dtype = torch.int16

    def __init__(self, kind: str, num_members: int, num_items: int, rec_size: int, seed: int):
        super().__init__()
        if kind not in ("random", "sto"):
            raise ValueError(f"reference policy must be random or sto, got {kind!r}")
        self.kind, self.num_items, self.rec_size = kind, num_items, rec_size
        self.action_shape = (rec_size,)
        self.generator = torch.Generator().manual_seed(seed)
        self._dummy = torch.nn.Parameter(torch.zeros(num_members))  # so state_dict/ensemble code is uniform

    def begin(self, obs):
        return obs["slate"].shape[:2]

    def act(self, state, obs, *, deterministic, random_phase, iteration, sim):
        s, b = state
        if self.kind == "sto":
            slates = torch.full((s, b, self.rec_size), -1, dtype=torch.long)
        else:
            slates = uniform_slates((s, b, self.rec_size), self.num_items, self.generator)
        return state, slates, slates

    def should_update(self, iteration, random_steps, buffer_size, batch_size):
        return False


__all__ = ["AgentConfig", "SlateAgent", "SACAgent", "ReinforceAgent", "SlateQAgent", "WkNNAgent", "ReferenceAgent"]
