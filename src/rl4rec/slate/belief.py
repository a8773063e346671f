"""GRU belief encoder (spec slate_rl.md §5): the agent's state from the slates and clicks seen so far.

Input per turn = concat over slots of [item embedding (20), click (1)] (slot-major, 210 values);
a 1-layer GRU with hidden size 20 gives the belief state. Each module (actor, critic) owns its
own encoder with its own trainable item table (N(0, 1) init), as in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rl4rec.slate.nets import EnsembleEmbedding, EnsembleGRU


class BeliefEncoder(nn.Module):
    def __init__(
        self, seeds: Sequence[int], num_items: int, rec_size: int = 10, item_dim: int = 20, state_dim: int = 20, salt: str = "belief"
    ):
        super().__init__()
        self.state_dim = state_dim
        self.items = EnsembleEmbedding(seeds, num_items, item_dim, f"{salt}/items")
        self.gru = EnsembleGRU(seeds, rec_size * (item_dim + 1), state_dim, f"{salt}/gru")

    def features(self, slates: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """(S, ..., K) slates and clicks -> (S, ..., K * (D + 1)) GRU inputs, slot-major."""
        emb = self.items(slates.long())
        return torch.cat([emb, clicks.unsqueeze(-1).to(emb.dtype)], dim=-1).flatten(-2)

    def encode(self, slates: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """Whole trajectories (S, B, T, K) -> belief states (S, B, T, H); state t has seen o_0..o_t."""
        return self.gru(self.features(slates, clicks))

    def step(self, h: torch.Tensor | None, slate: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """Online update while acting: (S, B, K) observation -> new state (S, B, H)."""
        gi = self.gru.input_proj(self.features(slate, clicks))
        if h is None:
            h = gi.new_zeros(gi.shape[0], gi.shape[1], self.state_dim)
        return self.gru.cell(gi, h)
