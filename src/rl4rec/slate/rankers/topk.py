"""TopK ranker (spec §6.1): the 10 items with the largest dot product with the action.

The item table is frozen: the simulator's embeddings ("ideal") or MF factors (§4). The action box
is the per-dimension [min, max] of the table.
"""

from __future__ import annotations

import torch
from torch import nn


class TopK(nn.Module):
    """A module only so that ``agent.to(device)`` moves its table; nothing of it is saved in a
    checkpoint (the table is an input of the run, not a learned weight)."""

    def __init__(self, table: torch.Tensor, rec_size: int = 10):
        super().__init__()
        table = torch.as_tensor(table, dtype=torch.float32)
        if table.ndim != 2 or not torch.isfinite(table).all():
            raise ValueError(f"TopK needs a finite (num_items, dim) table, got shape {tuple(table.shape)}")
        self.rec_size, self.action_dim = rec_size, table.shape[1]
        lo, hi = table.min(0).values, table.max(0).values
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("center", (hi + lo) / 2, persistent=False)
        self.register_buffer("scale", (hi - lo) / 2, persistent=False)

    def bounds(self, num_members: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.center.expand(num_members, -1), self.scale.expand(num_members, -1)

    @torch.no_grad()
    def rank(self, action: torch.Tensor) -> torch.Tensor:
        """(S, B, D) -> (S, B, K) distinct items sorted by decreasing score."""
        return (action @ self.table.T).topk(self.rec_size, dim=-1).indices
