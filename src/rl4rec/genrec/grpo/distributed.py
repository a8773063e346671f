"""Group statistics that do not depend on the number of processes.

Each process holds some completions (a group may even straddle processes). Rewards and prompt ids
are all-gathered, advantages are computed on the whole batch by prompt id, and each process keeps
its own rows. With the loss normalised by the global count and gradients summed across processes
(what DDP / accelerate do, up to their mean over processes), 1 and N processes give the same update.
"""

from __future__ import annotations

import torch

from rl4rec.devices import all_gather_rows, sum_gradients
from rl4rec.genrec.grpo.objective import group_advantages

__all__ = ["global_advantages", "all_gather_rows", "sum_gradients"]


def global_advantages(rewards: torch.Tensor, prompt_ids: torch.Tensor, **kwargs) -> tuple[torch.Tensor, dict, int]:
    """Advantages of this process's rows computed over the whole batch; also the global row count."""
    all_r, offset = all_gather_rows(rewards.float())
    all_p, _ = all_gather_rows(prompt_ids.long())
    adv, metrics = group_advantages(all_r, all_p, **kwargs)
    return adv[offset : offset + rewards.shape[0]], metrics, int(all_r.shape[0])
