"""One GRPO update on one process's share of a step's prompts (spec genrec.md §7.3-7.6).

rollouts (in chunks of ``rollout_batch`` prompts) -> weighted rewards -> advantages per prompt id
over the gathered batch of every process -> for each micro-batch of ``micro_batch`` prompts: the
policy's (and the reference's) per-token log-probs, the loss normalised by the *global* row or
token count, backward -> gradients summed over processes -> clip -> optimizer step. Repeated
``num_iterations`` times on the same rollouts (PPO-style, with the clipped ratio to the
generation-time log-probs); the reference log-probs are computed once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rl4rec.devices import Devices, all_gather_rows
from rl4rec.genrec.grpo.config import GRPOCommon
from rl4rec.genrec.grpo.logprobs import completion_logprobs
from rl4rec.genrec.grpo.objective import global_advantages, policy_loss
from rl4rec.genrec.grpo.rewards import RewardContext, combine_rewards
from rl4rec.genrec.grpo.rollout import RolloutBatch

__all__ = ["PromptBatch", "grpo_update", "group_stats"]


@dataclass
class PromptBatch:
    """The prompts of one process for one step; ids, targets and histories travel with them."""

    prompts: list[list[int]]
    targets: torch.Tensor  # (B,) item ids
    prompt_ids: torch.Tensor  # (B,) global ids, unique within the step over all processes
    histories: Sequence[tuple[int, ...]]


def group_stats(roll: RolloutBatch) -> dict[str, float]:
    """Diversity and hit statistics of the groups (spec §7.8)."""
    g = roll.group_size
    srt = roll.sid_index.view(-1, g).sort(1).values
    distinct = 1 + (srt[:, 1:] != srt[:, :-1]).sum(1)
    hit = (roll.item_ids == roll.target_ids).view(-1, g).any(1)
    toks = roll.tokens[roll.mask]
    return {
        "train/categorical_diversity": float((distinct.float() / g).mean()),
        "train/token_diversity": float(toks.unique().numel() / max(1, toks.numel())),
        "train/completion_length": float(roll.mask.sum(1).float().mean()),
        "train/group_hit_rate": float(hit.float().mean()),
    }


def grpo_update(
    cfg: GRPOCommon,
    batch: PromptBatch,
    family,
    *,
    policy,
    ref,
    optimizer,
    params: list[torch.nn.Parameter],
    ctx: RewardContext,
    devices: Devices,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Rollouts (``family.rollouts``: SID or free text), rewards, advantages and
    ``num_iterations`` optimizer steps; returns the metrics (plus ``n_tokens_global``, the
    completion tokens of every process). ``devices`` gives the device, the autocast context and
    the optimizer step (gradients summed over processes, clipped, fp16 unscaled)."""
    device, autocast = devices.device, devices.autocast
    g, b = cfg.group_size, len(batch.prompts)
    t0 = time.perf_counter()
    rolls, for_rewards = family.rollouts(policy, batch, generator)
    rollout_s = time.perf_counter() - t0

    # rewards on this process's whole groups; advantages over every process's rows, by prompt id
    rewards, metrics = combine_rewards(for_rewards, dict(cfg.rewards), ctx)
    adv, adv_metrics, n_rows = global_advantages(rewards.to(device), for_rewards.prompt_ids.to(device), scale=cfg.scale_rewards)
    metrics.update(adv_metrics)
    metrics.update(group_stats(rolls))

    t1 = time.perf_counter()
    tokens, mask = rolls.tokens.to(device), rolls.mask.to(device)
    n_tokens = float(all_gather_rows(mask.sum().view(1).float())[0].sum())
    norm = n_tokens if cfg.loss_type == "dapo" else float(n_rows)
    chunks = [slice(c, min(c + cfg.micro_batch, b)) for c in range(0, b, cfg.micro_batch)]
    old_lp: dict[int, torch.Tensor] = {}
    ref_lp: dict[int, torch.Tensor] = {}
    kl_sum = loss_sum = 0.0
    kw = dict(group_size=g, pad_id=family.pad_id, temperature=cfg.temperature, trie=family.lp_trie)
    for _ in range(cfg.num_iterations):  # >= 1: grad_norm is always set
        optimizer.zero_grad(set_to_none=True)
        for ci, ch in enumerate(chunks):
            rows = slice(ch.start * g, ch.stop * g)
            with autocast():
                lp = completion_logprobs(policy, batch.prompts[ch], tokens[rows], **kw).float()
            if ref is not None and cfg.beta > 0 and ci not in ref_lp:
                with torch.inference_mode(), autocast():
                    ref_lp[ci] = completion_logprobs(ref, batch.prompts[ch], tokens[rows], **kw).float()
            if cfg.num_iterations > 1 and ci not in old_lp:
                old_lp[ci] = lp.detach()
            loss, lm = policy_loss(
                lp, mask[rows], adv[rows], old_logp=old_lp.get(ci), ref_logp=ref_lp.get(ci), beta=cfg.beta,
                clip_eps=cfg.clip_eps, loss_type=cfg.loss_type, normalizer=norm,
            )
            devices.backward(loss)
            loss_sum += float(loss.detach())
            kl_sum += lm.get("train/kl", 0.0) * float(mask[rows].sum())
        grad_norm = devices.step(optimizer, params, cfg.grad_clip)
    metrics.update({
        "train/loss": loss_sum / cfg.num_iterations,
        "train/kl": kl_sum / max(1.0, float(mask.sum())) / cfg.num_iterations,
        "train/grad_norm": float(grad_norm),
        "perf/rollout_s": rollout_s,
        "perf/loss_s": time.perf_counter() - t1,
        "n_tokens_global": n_tokens,
    })
    return metrics
