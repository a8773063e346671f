"""The latent module (spec latent_reasoning.md §2.2): one single-head attention layer.

``z = softmax(q . K^T / sqrt(d)) V`` with the query taken at the last prompt position and keys /
values over every real (unpadded) position of the final hidden states; rotary embedding on Q and
K over the full width with base 1000, at absolute row indices (left padding shifts all positions
by a constant, which rotary attention ignores). No output projection, norm or residual. Kept and
computed in fp32 whatever the LM's dtype (it is tiny: 3 d^2 + 3 d parameters).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LatentAttention", "rotary"]


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate-half rotary embedding of ``x`` (``(..., S, d)``) at ``positions`` (``(S,)``)."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float32, device=x.device) / d)  # (d/2,)
    ang = positions.float()[:, None] * inv[None]  # (S, d/2)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    half = d // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class LatentAttention(nn.Module):
    """``(B, S, d)`` hidden states + ``(B, S)`` mask -> ``(B, d)`` latent vector."""

    def __init__(self, hidden_size: int, rope_base: float = 1000.0):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"rotary embedding needs an even hidden size, got {hidden_size}")
        self.hidden_size = hidden_size
        self.rope_base = float(rope_base)
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
            raise ValueError(f"hidden must be (B, S, d) and mask (B, S); got {tuple(hidden.shape)} and {tuple(mask.shape)}")
        if not bool(mask[:, -1].all()):
            raise ValueError("the last position of every row must be a real token (pad on the left)")
        h = hidden.float()
        s = h.shape[1]
        pos = torch.arange(s, device=h.device)
        q = rotary(self.q_proj(h[:, -1:]), pos[-1:], self.rope_base)  # (B, 1, d)
        k = rotary(self.k_proj(h), pos, self.rope_base)  # (B, S, d)
        scores = (q @ k.transpose(1, 2)).squeeze(1) / math.sqrt(self.hidden_size)  # (B, S)
        scores = scores.masked_fill(mask == 0, float("-inf"))
        return (scores.softmax(-1)[:, None] @ self.v_proj(h)).squeeze(1)
