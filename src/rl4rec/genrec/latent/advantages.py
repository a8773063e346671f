"""Advantages of noise-GRPO (spec latent_reasoning.md §4.4, §4.8, §4.10).

Rewards arrive as a ``(P, G)`` matrix: one row per prompt **in the step's global prompt order**
(the same on any number of processes: each process gathers every row before calling this), one
column per latent copy, column 0 the clean copy (``clean_anchor``). Groups are explicit in the
data: a row is a prompt's group, and the release's cross-prompt baseline is a block of
``baseline_prompts`` consecutive rows — in the release that block was "the prompts on all GPUs in
one micro-step", so its signal changed with the GPU count (2 prompts on their 2 GPUs).

- ``batch_clean_mean_l2`` (faithful §4.4): per block, ``b`` = mean of the block's clean rewards,
  ``A = (r - b) / (||r - b||_2 + 1e-6)`` with the norm over the whole block.
- ``group_clean``: ``A = r - r_clean`` of the same prompt (the clean copy gets 0).
- ``group_zscore``: standard GRPO, ``(r - mean_g) / (std_g + 1e-4)`` per prompt (unbiased std).
- ``faithful_group_mix`` (§4.8 as it behaves): per block,
  ``w * (r - mean_block) / (std_block + 1e-4) + (1 - w) * (r - b) / (sqrt(2) ||r - b||_2 + 1e-6)``
  (the release's popularity labels had no effect and its L2 norm ran over a duplicated vector).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

__all__ = ["ADVANTAGES", "latent_advantages", "block_of_rows"]

Variant = Literal["batch_clean_mean_l2", "group_clean", "group_zscore", "faithful_group_mix"]
ADVANTAGES = get_args(Variant)


def block_of_rows(num_prompts: int, baseline_prompts: int, device=None) -> tuple[torch.Tensor, int]:
    """Block id of each row (consecutive runs of ``baseline_prompts`` rows) and the block count."""
    if baseline_prompts < 1:
        raise ValueError(f"baseline_prompts must be >= 1, got {baseline_prompts}")
    block = torch.arange(num_prompts, device=device) // baseline_prompts
    return block, int(block.max()) + 1 if num_prompts else 0


def _block_sum(x: torch.Tensor, block: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of ``x`` (``(P, ...)``) over each block's rows, ``(n,)``."""
    return x.new_zeros(n).index_add_(0, block, x.reshape(x.shape[0], -1).sum(1))


def latent_advantages(rewards: torch.Tensor, variant: Variant, *, baseline_prompts: int = 2, hgpo_weight: float = 0.8, clean_anchor: bool = True) -> torch.Tensor:
    """``(P, G)`` advantages for ``(P, G)`` rewards (rows in global prompt order)."""
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (prompts, group_size >= 2), got {tuple(rewards.shape)}")
    if variant not in ADVANTAGES:
        raise ValueError(f"unknown advantage {variant!r}; choose from {', '.join(ADVANTAGES)}")
    r = rewards.float()
    p, g = r.shape
    if variant == "group_zscore":
        return (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)
    if not clean_anchor:
        raise ValueError(f"advantage {variant} needs the clean copy (clean_anchor=true)")
    if variant == "group_clean":
        return r - r[:, :1]
    block, n = block_of_rows(p, baseline_prompts, r.device)
    rows_per_block = torch.bincount(block, minlength=n).float()
    base = (_block_sum(r[:, 0], block, n) / rows_per_block)[block][:, None]  # mean clean reward of the block
    d = r - base
    norm = _block_sum(d.pow(2), block, n).sqrt()[block][:, None]
    if variant == "batch_clean_mean_l2":
        return d / (norm + 1e-6)
    # faithful_group_mix: z-score over the block's P_b * G rewards (mean of all, unbiased std)
    count = rows_per_block[block][:, None] * g
    mean = (_block_sum(r, block, n)[block][:, None]) / count
    var = _block_sum((r - mean).pow(2), block, n)[block][:, None] / (count - 1)
    z = (r - mean) / (var.sqrt() + 1e-4)
    return hgpo_weight * z + (1 - hgpo_weight) * d / (math.sqrt(2) * norm + 1e-6)
