"""Group statistics that do not depend on the number of processes.

Each process holds some completions (a group may even straddle processes). Rewards and prompt ids
are all-gathered, advantages are computed on the whole batch by prompt id, and each process keeps
its own rows. With the loss normalised by the global count and gradients summed across processes
(what DDP / accelerate do, up to their mean over processes), 1 and N processes give the same update.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rl4rec.genrec.grpo.objective import group_advantages


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate every process's rows (sizes may differ); returns the whole and this rank's offset."""
    rank, world = _world()
    if world == 1:
        return x, 0
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)  # NCCL gathers device tensors
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = torch.zeros((max(counts), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    whole = torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])
    return whole, sum(counts[:rank])


def global_advantages(rewards: torch.Tensor, prompt_ids: torch.Tensor, **kwargs) -> tuple[torch.Tensor, dict, int]:
    """Advantages of this process's rows computed over the whole batch; also the global row count."""
    all_r, offset = all_gather_rows(rewards.float())
    all_p, _ = all_gather_rows(prompt_ids.long())
    adv, metrics = group_advantages(all_r, all_p, **kwargs)
    return adv[offset : offset + rewards.shape[0]], metrics, int(all_r.shape[0])


def sum_gradients(parameters) -> None:
    """All-reduce (sum) the gradients of ``parameters`` across processes."""
    _, world = _world()
    if world == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
