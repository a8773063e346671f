"""Group-normalised advantages, the k3 KL estimator and the GRPO / DAPO / GSPO losses (spec §7.5-7.6).

Everything is computed per group id, never by position, so the same completions give the same
advantages however they are ordered or split over processes: :func:`global_advantages` all-gathers
rewards and prompt ids, computes on the whole batch and keeps this process's rows; with the loss
normalised by the global count and gradients summed, 1 and N processes make the same update.
"""

from __future__ import annotations

from typing import Literal

import torch

from rl4rec.devices import all_gather_rows
from rl4rec.genrec.grpo.rewards import group_moments


def group_advantages(
    rewards: torch.Tensor, prompt_ids: torch.Tensor, *, scale: Literal["group", "none"] = "group", eps: float = 1e-4
) -> tuple[torch.Tensor, dict[str, float]]:
    """``A_i = (r_i - mean_g) / (std_g + eps)`` with the unbiased std of the group (``scale="group"``),
    or ``r_i - mean_g`` (``"none"``). Returns advantages and the share of groups with zero spread."""
    r = rewards.float()
    idx, mean, std = group_moments(r, prompt_ids, ddof=1)
    centred = r - mean[idx]
    adv = centred / (std[idx] + eps) if scale == "group" else centred
    flat = std <= 1e-12
    adv = torch.where(flat[idx], torch.zeros_like(adv), adv)  # equal rewards in a group: no signal
    return adv, {"train/zero_adv_groups": float(flat.float().mean()), "train/reward_std": float(std.mean())}


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``exp(ref - logp) - (ref - logp) - 1`` per token (unbiased, always >= 0)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def policy_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    *,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    clip_eps: float = 0.2,
    loss_type: Literal["grpo", "dapo", "gspo"] = "grpo",
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective on per-token log-probs ``logp`` (M, T) with completion ``mask``.

    ``old_logp`` defaults to ``logp.detach()`` (one pass per generation batch: ratio = 1, gradient
    ``A * grad logp``); with older log-probs the PPO-style clipped ratio is used. ``normalizer``
    is the number of sequences (grpo/gspo) or tokens (dapo) over *all* processes, so that summing
    gradients across processes equals the single-process gradient.
    """
    mask = mask.float()
    old = logp.detach() if old_logp is None else old_logp
    lengths = mask.sum(-1).clamp(min=1)
    seq = loss_type == "gspo"  # gspo: one ratio (and loss) per sequence, else per token
    if seq:
        ratio, a = torch.exp(((logp - old) * mask).sum(-1) / lengths), advantages
    else:
        ratio, a = torch.exp(logp - old), advantages.unsqueeze(-1)
    loss = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
    if beta and ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        loss = loss + (beta * (kl * mask).sum(-1) / lengths if seq else beta * kl)
    if seq:
        total, count = loss.sum(), loss.numel()
    elif loss_type == "grpo":
        total, count = ((loss * mask).sum(-1) / lengths).sum(), logp.shape[0]
    else:  # dapo: token-level mean
        total, count = (loss * mask).sum(), mask.sum().clamp(min=1)
    denom = normalizer if normalizer is not None else float(count)
    metrics = {}
    if ref_logp is not None:
        metrics["train/kl"] = float((k3_kl(logp.detach(), ref_logp) * mask).sum() / mask.sum().clamp(min=1))
    return total / denom, metrics


def global_advantages(rewards: torch.Tensor, prompt_ids: torch.Tensor, **kwargs) -> tuple[torch.Tensor, dict, int]:
    """Advantages of this process's rows computed over the whole batch; also the global row count."""
    all_r, offset = all_gather_rows(rewards.float())
    all_p, _ = all_gather_rows(prompt_ids.long())
    adv, metrics = group_advantages(all_r, all_p, **kwargs)
    return adv[offset : offset + rewards.shape[0]], metrics, int(all_r.shape[0])
