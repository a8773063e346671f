"""GRPO rollouts: G completions per prompt, each carrying its item, rank and prompt id explicitly.

Modes (spec genrec.md §7.3):

- ``beam``: constrained beam search with G beams; the group is the G *distinct* best items, rank
  0 = best beam. Not samples of the policy (deliberately: unique, high-likelihood candidates).
- ``sample``: G independent constrained samples; duplicates are frequent.
- ``sample_dedup``: ``oversample x G`` samples, then the distinct items first (most frequent
  first), then repeats to fill G.
- ``mixed``: the ``beams = round(beam_share x G)`` best distinct items by beam search, then
  G - beams independent constrained samples (which may repeat a beam item): the beam half finds
  the likely items, the sampled half keeps some of the policy's own spread.
- ``dynamic_sampling`` (sampling modes): as ``sample_dedup`` but every copy of the target comes
  first (upstream's selection, spec §7.3).

``rank`` is the completion's rank by sequence log-prob inside its group (in beam mode that is the
beam rank), never a position modulo G (spec §12.4). ``add_gt`` puts the target's completion in
the group's last slot, with EOS (upstream drops it, §12.6). All selection is batched tensor work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch

from rl4rec.genrec.decoding import Decoded, ItemTrie, constrained_beam_search, constrained_sample

__all__ = ["RolloutBatch", "generate_rollouts", "merge_rollouts", "select_group", "RolloutMode"]

RolloutMode = Literal["beam", "sample", "sample_dedup", "mixed"]


@dataclass
class RolloutBatch:
    """B prompts x G completions, flattened to M = B*G rows (rows of a prompt are consecutive)."""

    prompt_ids: torch.Tensor  # (M,) global prompt (group) id
    item_ids: torch.Tensor  # (M,) generated item (a hit resolved to the target under SID collisions)
    sid_index: torch.Tensor  # (M,) distinct-SID index of the completion
    ranks: torch.Tensor  # (M,) rank inside the group by sequence log-prob (0 = best)
    target_ids: torch.Tensor  # (M,)
    tokens: torch.Tensor  # (M, T) completion ids (SID tokens, "\n", EOS, pad)
    mask: torch.Tensor  # (M, T) bool, True up to and including EOS
    group_size: int


def merge_rollouts(rolls: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Concatenate rollout chunks (completion widths may differ: right-pad)."""
    width = max(r.tokens.shape[1] for r in rolls)

    def pad(x, value):
        return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

    return RolloutBatch(
        **{k: torch.cat([getattr(r, k) for r in rolls]) for k in ("prompt_ids", "item_ids", "sid_index", "ranks", "target_ids")},
        tokens=torch.cat([pad(r.tokens, pad_id) for r in rolls]),
        mask=torch.cat([pad(r.mask, False) for r in rolls]),
        group_size=rolls[0].group_size,
    )


def select_group(sids: torch.Tensor, scores: torch.Tensor, target_sid: torch.Tensor, g: int, *, target_first: bool) -> torch.Tensor:
    """Column indices ``(B, g)`` choosing g of the M sampled completions of each row.

    Order of preference: (every copy of the target, if ``target_first``), then one copy of each
    other distinct SID by descending frequency (ties: higher log-prob), then the remaining
    copies. Done as one sort over a composite key, no loop over rows.
    """
    b, m = sids.shape
    same = sids[:, :, None] == sids[:, None, :]  # (B, M, M)
    freq = same.sum(-1)
    earlier = torch.tril(torch.ones(m, m, dtype=torch.bool, device=sids.device), diagonal=-1)
    first = ~(same & earlier).any(-1)  # first occurrence of its SID in the row
    is_target = sids == target_sid[:, None]
    tier = torch.where(first, 1, 2)
    if target_first:
        tier = torch.where(is_target, 0, tier)
    # sort by tier, then frequency (desc), then log-prob (desc): lexicographic via stable sorts
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    for key, desc in ((freq, True), (tier, False)):
        k = key.gather(1, order)
        order = order.gather(1, torch.argsort(k, dim=1, descending=desc, stable=True))
    return order[:, :g]


def mixed_split(group_size: int, beam_share: float) -> int:
    """Beam completions of a mixed group: ``round(beam_share * G)``, at least 1 and at most G - 1."""
    if group_size < 2:
        raise ValueError(f"rollout=mixed needs group_size >= 2 (one beam, one sample), got {group_size}")
    return min(group_size - 1, max(1, round(beam_share * group_size)))


def _concat_decoded(a: Decoded, b: Decoded) -> Decoded:
    """The candidates of ``a`` then those of ``b``, per prompt (both decode the same trie: same width)."""
    return Decoded(*(torch.cat([getattr(a, f.name), getattr(b, f.name)], 1) for f in fields(Decoded)))


def _ranks_by_score(scores: torch.Tensor) -> torch.Tensor:
    """Rank of each completion in its row by score (0 = highest), ties by position."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return torch.argsort(order, dim=1, stable=True)


@torch.no_grad()
def generate_rollouts(
    model,
    prompts: Sequence[Sequence[int]],
    targets: torch.Tensor,
    prompt_ids: torch.Tensor,
    trie: ItemTrie,
    *,
    group_size: int,
    mode: RolloutMode = "beam",
    temperature: float = 1.0,
    dynamic_sampling: bool = False,
    oversample: float = 1.5,
    add_gt: bool = False,
    beam_share: float = 0.5,
    generator: torch.Generator | None = None,
) -> RolloutBatch:
    """G completions for each of the B ``prompts`` (their ``targets`` and global ``prompt_ids``)."""
    g = group_size
    pick = mode == "sample_dedup" or (mode == "sample" and dynamic_sampling)
    was_training = model.training
    model.eval()
    try:
        if mode == "beam":
            out = constrained_beam_search(model, prompts, trie, num_beams=g, temperature=temperature)
        elif mode in ("sample", "sample_dedup"):
            n = max(g, int(oversample * g)) if pick else g
            out = constrained_sample(model, prompts, trie, num_samples=n, temperature=temperature, generator=generator)
        elif mode == "mixed":
            nb = mixed_split(g, beam_share)
            out = _concat_decoded(
                constrained_beam_search(model, prompts, trie, num_beams=nb, temperature=temperature),
                constrained_sample(model, prompts, trie, num_samples=g - nb, temperature=temperature, generator=generator),
            )
        else:
            raise ValueError(f"unknown rollout mode {mode!r}; choose beam, sample, sample_dedup or mixed")
    finally:
        model.train(was_training)
    dev = out.sid_index.device
    targets = targets.to(dev)
    tsid = trie.item_sid.to(dev)[targets]
    sid, items, scores = out.sid_index, out.items_for_targets(trie, targets), out.scores
    tokens, mask = out.token_ids, out.completion_mask
    if pick:
        cols = select_group(sid, scores, tsid, g, target_first=dynamic_sampling)
        sid, items, scores = (x.gather(1, cols) for x in (sid, items, scores))
        tokens, mask = (torch.take_along_dim(x, cols[..., None], dim=1) for x in (tokens, mask))
    ranks = torch.arange(g, device=dev).expand(len(prompts), g) if mode == "beam" else _ranks_by_score(scores)
    if add_gt:  # the target's own completion (with its EOS) replaces the last slot of each group
        comp = trie.completions.to(dev)[tsid]
        width = max(tokens.shape[-1], comp.shape[-1])
        tokens = torch.nn.functional.pad(tokens, (0, width - tokens.shape[-1]), value=trie.pad_id)
        mask = torch.nn.functional.pad(mask, (0, width - mask.shape[-1]), value=False)
        tokens[:, -1] = torch.nn.functional.pad(comp, (0, width - comp.shape[-1]), value=trie.pad_id)
        mask[:, -1] = torch.arange(width, device=dev) < (trie.sid_lengths.to(dev)[tsid] + len(trie.suffix_ids))[:, None]
        sid = sid.clone()  # items is a fresh tensor already
        sid[:, -1], items[:, -1] = tsid, targets
        if mode != "beam":  # the injected target ranks last; the sampled rows are ranked among themselves
            ranks = torch.cat([_ranks_by_score(scores[:, :-1]), torch.full_like(ranks[:, :1], g - 1)], 1)
    return RolloutBatch(
        prompt_ids=prompt_ids.to(dev).repeat_interleave(g),
        item_ids=items.reshape(-1),
        sid_index=sid.reshape(-1),
        ranks=ranks.reshape(-1),
        target_ids=targets.repeat_interleave(g),
        tokens=tokens.flatten(0, 1),
        mask=mask.flatten(0, 1),
        group_size=g,
    )
