"""Boredom bookkeeping of TopicRec, vectorised over users (spec §1.7).

The official code keeps two deques of capacity C: A (main topics of clicked items) and S (turn
stamp of each click). Both drop their oldest entry on overflow; after each turn, entries are
popped from the front of *both* while S's oldest stamp is ``< t - window``. Reset clicks enter A
but not S, so the two are misaligned and A keeps clicks older than the window.

Vectorised form: per user a shift register of the last C clicked topics (newest at the right)
plus ``a_len`` (A = its last ``a_len`` entries), and the same for stamps with ``s_len``. One turn:
``a_len <- min(C, a_len + c) - p`` and ``s_len <- min(C, s_len + c) - p`` where c = clicks this turn
and p = stamps ``< t - window`` among the last ``min(C, s_len + c)`` stamps (stamps only grow, so
they are exactly the ones the while-loop pops).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Memory(NamedTuple):
    """Recent-click memories of B users (all tensors have B rows)."""

    topics: torch.Tensor  # (B, C) long, last C clicked topics, newest at column C-1
    a_len: torch.Tensor  # (B,) long, |A|
    stamps: torch.Tensor  # (B, C) long, last C click stamps
    s_len: torch.Tensor  # (B,) long, |S|


def push_targets(history: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Column of ``cat([history, new], 1)`` in the pushed history, C for dropped entries.

    Depends only on which new entries are kept, so histories pushed with the same ``keep``
    (topics and stamps) share it.
    """
    cap = history.shape[1]
    valid = torch.cat([torch.ones_like(history, dtype=torch.bool), keep], dim=1)
    from_end = valid.flip(1).cumsum(1).flip(1)  # valid entries at or after each column
    target = cap - from_end  # newest valid entry lands in column C-1
    return torch.where(valid & (target >= 0), target, cap)  # column C is a discard bin


def push(history: torch.Tensor, new: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Append ``new[keep]`` (row-wise, in column order) to ``history`` and keep the last C columns."""
    batch, cap = history.shape
    target = push_targets(history, keep) if targets is None else targets
    out = torch.zeros(batch, cap + 1, dtype=history.dtype, device=history.device)
    return out.scatter_(1, target, torch.cat([history, new], dim=1))[:, :cap]


def empty(batch: int, cap: int, device: torch.device | str = "cpu") -> Memory:
    zeros = torch.zeros(batch, dtype=torch.long, device=device)
    hist = torch.full((batch, cap), -1, dtype=torch.long, device=device)
    return Memory(hist, zeros, hist.clone(), zeros.clone())


def record_reset(mem: Memory, topics: torch.Tensor, clicks: torch.Tensor, *, aligned: bool) -> Memory:
    """Reset clicks: into A; into S (stamped 0) only when ``aligned`` (the §9.4 fix)."""
    cap = mem.topics.shape[1]
    n = clicks.sum(1)
    hist = push(mem.topics, topics, clicks)
    a_len = (mem.a_len + n).clamp(max=cap)
    if not aligned:
        return Memory(hist, a_len, mem.stamps, mem.s_len)
    stamps = push(mem.stamps, torch.zeros_like(topics), clicks)
    return Memory(hist, a_len, stamps, (mem.s_len + n).clamp(max=cap))


def record_turn(mem: Memory, topics: torch.Tensor, clicks: torch.Tensor, t: int, window: int) -> Memory:
    """Clicks of turn ``t`` (``clicks`` bool (B, K), ``topics`` (B, K)), then forget old stamps."""
    cap = mem.topics.shape[1]
    n = clicks.sum(1)
    targets = push_targets(mem.topics, clicks)
    hist = push(mem.topics, topics, clicks, targets)
    stamps = push(mem.stamps, torch.full_like(topics, t), clicks, targets)
    a_cap = (mem.a_len + n).clamp(max=cap)
    s_cap = (mem.s_len + n).clamp(max=cap)
    in_s = torch.arange(cap, device=hist.device) >= (cap - s_cap).unsqueeze(1)
    popped = (in_s & (stamps < t - window)).sum(1)
    return Memory(hist, a_cap - popped, stamps, s_cap - popped)


def topic_counts(mem: Memory, num_topics: int) -> torch.Tensor:
    """``(B, T)`` clicks per topic in A (the memory used by the boredom test)."""
    cap = mem.topics.shape[1]
    in_a = torch.arange(cap, device=mem.topics.device) >= (cap - mem.a_len).unsqueeze(1)
    counts = torch.zeros(mem.topics.shape[0], num_topics, device=mem.topics.device)
    return counts.scatter_add_(1, mem.topics.clamp(min=0), in_a.float())


def advance(
    bored: torch.Tensor, timer: torch.Tensor, counts: torch.Tensor, threshold: int, duration: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start-of-turn update: bored timers tick down, expired topics recover (timer back to
    ``duration``), then topics with ``counts >= threshold`` become bored (a running timer is kept)."""
    timer = timer - bored.long()
    bored = bored & (timer != 0)
    timer = torch.where(bored, timer, torch.full_like(timer, duration))
    return bored | (counts >= threshold), timer
