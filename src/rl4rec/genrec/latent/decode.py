"""Title-trie constrained beam search with the latent (spec latent_reasoning.md §3.2).

The release masks disallowed tokens with ``-1e6`` and applies *no* mask when a beam's prefix is
missing from its trie, which is how invalid strings appear; it also runs the prompt (twice, for
the latent) on every beam copy. Here: each prompt is prefilled once and its latent appended once,
then the cache is laid out for the beams; disallowed tokens get ``-inf`` from the CSR trie (one
gather for all beams); a beam that reaches EOS moves to a per-prompt pool of finished titles
scored by ``sum of log-probs / generated length`` (length penalty 1.0, EOS counted; configurable); a live beam
that cannot beat the pool's last entry any more (its score over the longest completion left in
the trie is an upper bound) is dropped; the search ends when no beam is live. Every returned
title is a catalogue title; with fewer than ``num_return`` reachable titles the row is padded
with ``-1``.

With ``num_beams`` at least the number of catalogue titles nothing is ever pruned by width and
the result equals exhaustive scoring of every title (the tests' oracle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rl4rec.genrec.decoding import BeamKV, left_pad
from rl4rec.genrec.latent.model import LatentLM
from rl4rec.genrec.latent.titles import TitleTrie

__all__ = ["TitleBeams", "title_beam_search"]

NEG_INF = float("-inf")


@dataclass
class TitleBeams:
    groups: torch.Tensor  # (B, K) title group per slot, -1 = none
    scores: torch.Tensor  # (B, K) length-normalised log-probabilities, best first


@torch.no_grad()
def title_beam_search(
    llm: LatentLM, prompts: Sequence[Sequence[int]], trie: TitleTrie, *, num_beams: int = 10, num_return: int | None = None, pad_id: int = 0, length_penalty: float = 1.0
) -> TitleBeams:
    """Top ``num_return`` (default ``num_beams``) catalogue titles per prompt, best first, scored
    by ``sum log p / length ** length_penalty`` (the release: 1.0; 0 ranks by total log-prob)."""
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    k = num_return or num_beams
    if k > num_beams:
        raise ValueError(f"num_return ({k}) must be <= num_beams ({num_beams})")
    dev = llm.lm.get_input_embeddings().weight.device
    ids, mask = left_pad(prompts, pad_id, dev)
    hidden, cache = llm.prefill(ids, mask)
    first, mask, lengths = llm.think(hidden, mask, cache)
    logits = llm.head(first).float()
    vocab = logits.shape[-1]
    t = trie.to(dev) if trie.child_ptr.device != dev else trie
    b, w = len(prompts), num_beams
    node = torch.zeros(b, 1, dtype=torch.long, device=dev)
    score = torch.zeros(b, 1, device=dev)
    pool_score = torch.full((b, k), NEG_INF, device=dev)
    pool_group = torch.full((b, k), -1, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)[:, None]
    for depth in range(t.max_depth):
        nb = node.shape[1]
        logp = logits.log_softmax(-1).view(b, nb, vocab)
        allowed = t.allowed(node, vocab).view(b, nb, vocab) & torch.isfinite(score)[..., None]
        cand = (score[..., None] + logp).masked_fill(~allowed, NEG_INF)
        # finished titles: the EOS edges (each trie path is reached by one beam: no duplicates)
        fin_node = t.step(node, torch.full_like(node, t.eos_id), vocab)
        fin = cand[..., t.eos_id].masked_fill(fin_node < 0, NEG_INF) / (depth + 1) ** length_penalty
        all_s = torch.cat([pool_score, fin], 1)
        all_g = torch.cat([pool_group, t.end_group[fin_node.clamp(min=0)]], 1)
        pool_score, top = all_s.topk(k, dim=1)
        pool_group = torch.where(torch.isfinite(pool_score), all_g.gather(1, top), torch.full_like(top, -1))
        # live prefixes: every other edge, at most num_beams per prompt, if they can still enter the pool
        cand[..., t.eos_id] = NEG_INF
        flat = cand.view(b, -1)
        ls, li = flat.topk(min(w, flat.shape[1]), dim=1)
        origin, tok = li // vocab, li % vocab
        child = t.step(node.gather(1, origin), tok, vocab)
        bound = ls / t.max_total[child.clamp(min=0)].float() ** length_penalty  # the best final score still possible (ls <= 0)
        ls = ls.masked_fill((child < 0) | (bound < pool_score[:, -1:]), NEG_INF)
        if not bool(torch.isfinite(ls).any()):
            break
        src = (rows * nb + origin).view(-1)  # the row each new beam continues (at depth 0: its prompt's)
        BeamKV.select_rows(cache, src, t.max_depth + 1)
        mask, lengths = mask[src], lengths[src]
        node, score = child.clamp(min=0), ls
        new, mask = llm.extend(llm.embed(tok.view(-1, 1)), cache, mask, lengths)
        lengths = lengths + 1
        logits = llm.head(new[:, -1]).float()
    return TitleBeams(pool_group, pool_score)

