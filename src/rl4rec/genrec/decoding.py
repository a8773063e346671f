"""Decoding constrained to catalog items: an item trie as dense tensors, a batched beam search with
a shared-prompt KV cache, exact top-K enumeration, constrained sampling, and a ``LogitsProcessor``
for HF ``generate`` (spec genrec.md §6, §12.2).

**The trie** is built from the token ids of the SID tokens (never by tokenizing prompt strings),
so its start state does not depend on the prompt. Node ``0`` is the root; ``child[node, col]`` is
the next node (``-1`` = not allowed) for the trie's token columns: first every SID token, then
the completion suffix (``"\\n"``, EOS) and pad. A node that completes a SID has ``end_sid >= 0``.
After a SID the suffix is forced; after EOS the row sits in an absorbing ``done`` node that only
allows EOS/pad (HF keeps stepping finished rows). SIDs may have different lengths, and one SID may
even be a prefix of another.

**Scores** are sums of the model's log-probabilities of the SID tokens (log-softmax over the
whole vocabulary, as HF beam search does before its processors). The suffix is deterministic once
a SID is complete, so it costs nothing: the processor gives forced tokens score 0, and our search
never steps through them. Every function is stateless: the depth of a row is
``cur_len - prompt_len`` and its node is recomputed from its generated ids.

**Items sharing a SID** (collisions): decoding works on *distinct SIDs*. A result names the SID's
index and, as ``items``, the lowest item id with that SID. Evaluation counts a generated SID as a
hit when it equals the target item's SID (so every item of a colliding group counts; spec §8).

**Dead ends are errors.** A row whose generated ids leave the trie, or whose allowed tokens all
have probability 0, raises :class:`DeadEndError`; there is no unconstrained fallback.

    trie = ItemTrie.from_catalog(catalog, tokenizer)
    out = constrained_beam_search(model, prompt_id_lists, trie, num_beams=20)
    out.items, out.scores, out.token_ids, out.token_logprobs     # (B, 20), (B, 20), (B, 20, T), ...
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessor
from transformers.cache_utils import DynamicLayer

__all__ = [
    "ItemTrie",
    "Decoded",
    "DeadEndError",
    "constrained_beam_search",
    "exact_top_k",
    "constrained_sample",
    "TrieLogitsProcessor",
    "prefix_allowed_tokens_fn",
    "generation_config",
]

log = logging.getLogger(__name__)
NEG_INF = float("-inf")


class DeadEndError(RuntimeError):
    """A row has no valid continuation under the trie (constrained decoding never goes unconstrained)."""


# --------------------------------------------------------------------------- the trie


class ItemTrie:
    """Prefix tree over the token ids of every distinct SID of a catalog, as dense tensors.

    Args:
        sid_token_ids: the token ids of each distinct SID (any lengths >= 1).
        suffix_ids: the forced completion after a SID, e.g. ``[id("\\n"), eos]``; must end with EOS.
        pad_id: the pad token (allowed after EOS, as HF pads finished rows).
        sid_items: the item ids of each SID (several when SIDs collide).
    """

    def __init__(self, sid_token_ids: Sequence[Sequence[int]], suffix_ids: Sequence[int], pad_id: int, sid_items: Sequence[Sequence[int]]):
        if not sid_token_ids:
            raise ValueError("an item trie needs at least one SID")
        if len(sid_items) != len(sid_token_ids):
            raise ValueError(f"{len(sid_items)} item groups for {len(sid_token_ids)} SIDs")
        seqs = [tuple(int(t) for t in s) for s in sid_token_ids]
        if any(not s for s in seqs):
            raise ValueError("a SID must have at least one token")
        if len(set(seqs)) != len(seqs):
            raise ValueError("SID token sequences must be distinct (merge items sharing a SID into one group)")
        suffix = [int(t) for t in suffix_ids]
        if not suffix:
            raise ValueError("the completion suffix must end with EOS")
        sid_vocab = sorted({t for s in seqs for t in s})
        if set(suffix) & set(sid_vocab):
            raise ValueError("suffix tokens must not be SID tokens")
        extra = list(dict.fromkeys([*suffix, int(pad_id)]))
        columns = sid_vocab + extra
        col = {t: i for i, t in enumerate(columns)}
        self.num_sid_cols = len(sid_vocab)
        self.suffix_ids = suffix
        self.eos_id, self.pad_id = suffix[-1], int(pad_id)
        self.num_sids = len(seqs)
        self.max_sid_len = max(len(s) for s in seqs)

        # nodes of SID prefixes, breadth-first so depth(node) is non-decreasing in the node id
        nodes: dict[tuple[int, ...], int] = {(): 0}
        for depth in range(1, self.max_sid_len + 1):
            for s in sorted({s[:depth] for s in seqs if len(s) >= depth}):
                nodes[s] = len(nodes)
        n_prefix = len(nodes)
        n = n_prefix + len(suffix)  # + one node per suffix position; the last one is `done`
        child = np.full((n, len(columns)), -1, dtype=np.int64)
        end_sid = np.full(n, -1, dtype=np.int64)
        for prefix, node in nodes.items():
            if prefix:
                child[nodes[prefix[:-1]], col[prefix[-1]]] = node
        for g, s in enumerate(seqs):
            end_sid[nodes[s]] = g
        suffix_nodes = list(range(n_prefix, n))
        child[end_sid >= 0, col[suffix[0]]] = suffix_nodes[0]
        for i in range(1, len(suffix)):
            child[suffix_nodes[i - 1], col[suffix[i]]] = suffix_nodes[i]
        self.done_node = suffix_nodes[-1]
        child[self.done_node, col[self.eos_id]] = self.done_node
        child[self.done_node, col[self.pad_id]] = self.done_node
        has_sid_children = (child[:, : self.num_sid_cols] >= 0).any(1)
        # forced = a single deterministic continuation that is not a choice between items
        forced = (np.arange(n) >= n_prefix) | ((end_sid >= 0) & ~has_sid_children)

        self.columns = torch.as_tensor(columns, dtype=torch.long)
        self.col_of = torch.full((max(columns) + 1,), -1, dtype=torch.long)
        self.col_of[self.columns] = torch.arange(len(columns))
        self.child = torch.as_tensor(child)
        self.end_sid = torch.as_tensor(end_sid)
        self.has_sid_children = torch.as_tensor(has_sid_children)
        self.forced = torch.as_tensor(forced)
        # live beams that exact enumeration may need at one depth: the most internal nodes at a depth
        self.max_width = max(Counter(len(p) for p in nodes if len(p) < self.max_sid_len).values())
        # completions (SID + suffix), right-padded, and their lengths
        comps = [torch.as_tensor([*s, *suffix], dtype=torch.long) for s in seqs]
        self.completions = torch.nn.utils.rnn.pad_sequence(comps, batch_first=True, padding_value=self.pad_id)
        self.sid_lengths = torch.as_tensor([len(s) for s in seqs], dtype=torch.long)
        self.sid_items = [list(map(int, items)) for items in sid_items]
        self.sid_first_item = torch.as_tensor([min(items) for items in self.sid_items], dtype=torch.long)
        self.sequences = seqs

    @classmethod
    def from_catalog(cls, catalog, tokenizer) -> ItemTrie:
        """The trie of a catalog's (or an :class:`SIDCodec`'s) SIDs under ``tokenizer``.

        Distinct SIDs are numbered in order of their first item; :attr:`item_sid` maps items to them.
        """
        codec = getattr(catalog, "sids", catalog)
        if codec is None:
            raise ValueError("the catalog has no SIDs")
        groups = codec.group_ids()
        items = [[] for _ in range(int(groups.max()) + 1)]
        for item, g in enumerate(groups.tolist()):
            items[g].append(item)
        vocab = tokenizer.get_vocab()
        seqs = []
        for group in items:
            toks = codec.tokens(group[0])  # the group's first item (every item of a group has the same SID)
            missing = [t for t in toks if t not in vocab]
            if missing:
                raise ValueError(f"SID tokens {missing} are not in the tokenizer; build it with the catalog's SIDs")
            seqs.append([vocab[t] for t in toks])
        suffix = tokenizer("\n", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        trie = cls(seqs, suffix, pad, items)
        trie.item_sid = torch.as_tensor(groups, dtype=torch.long)
        return trie

    def to(self, device) -> ItemTrie:
        """A shallow copy whose tensors live on ``device``."""
        new = object.__new__(ItemTrie)
        new.__dict__.update({k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()})
        return new

    def path(self, generated: torch.Tensor) -> torch.Tensor:
        """``(N, t + 1)`` nodes of each row of generated ids ``(N, t)``: the root, then the node after
        every token (``-1`` once a token leaves the trie); the last column is the node reached.
        Vectorised over rows (a loop over the t <= a few positions only)."""
        node = torch.zeros(generated.shape[0], dtype=torch.long, device=generated.device)
        col_of, child = self.col_of.to(generated.device), self.child.to(generated.device)
        nodes = [node]
        for j in range(generated.shape[1]):
            tok = generated[:, j]
            inside = (tok >= 0) & (tok < col_of.numel())
            col = torch.where(inside, col_of[tok.clamp(0, col_of.numel() - 1)], -1)
            ok = (node >= 0) & (col >= 0)
            node = torch.where(ok, child[node.clamp(min=0), col.clamp(min=0)], -1)
            nodes.append(node)
        return torch.stack(nodes, 1)

    def sid_of(self, generated: torch.Tensor) -> torch.Tensor:
        """Index of the SID each row of completion ids ``(N, t)`` spells: its SID tokens, the whole
        suffix, then only EOS/pad. ``-1`` for every other row (outside the trie, or cut before EOS)."""
        nodes = self.path(generated)
        end_sid = self.end_sid.to(generated.device)[nodes[:, :-1].clamp(min=0)]  # SID ending before token j
        leaves = (nodes[:, :-1] >= 0) & (end_sid >= 0) & (generated == self.suffix_ids[0])
        sid = torch.where(leaves, end_sid, -1).amax(1) if generated.shape[1] else torch.full_like(nodes[:, 0], -1)
        return torch.where(nodes[:, -1] == self.done_node, sid, -1)

    def __repr__(self) -> str:
        return f"ItemTrie({self.num_sids} SIDs, {self.num_sid_cols} SID tokens, depth {self.max_sid_len}, nodes {self.child.shape[0]})"


# --------------------------------------------------------------------------- results


@dataclass
class Decoded:
    """Top-K (beam / exact) or G sampled items per prompt.

    Attributes:
        sid_index: ``(B, K)`` index of each distinct SID (``trie.sid_items[i]`` lists its items).
        items: ``(B, K)`` the lowest item id carrying that SID.
        scores: ``(B, K)`` sum of the SID tokens' log-probabilities (best first for beam/exact).
        token_ids: ``(B, K, T)`` completion ids: SID tokens, ``"\\n"``, EOS, then pad.
        token_logprobs: ``(B, K, T)`` log-probability of each SID token; 0 at the forced suffix
            and padding (recompute them with gradients in a training loss).
        completion_mask: ``(B, K, T)`` True up to and including EOS.
    """

    sid_index: torch.Tensor
    items: torch.Tensor
    scores: torch.Tensor
    token_ids: torch.Tensor
    token_logprobs: torch.Tensor
    completion_mask: torch.Tensor

    def items_for_targets(self, trie: ItemTrie, target_ids: torch.Tensor) -> torch.Tensor:
        """``items`` with a hit resolved to the target: where the generated SID equals the SID of
        ``target_ids[b]`` (one target per prompt), the target's id; elsewhere the SID's lowest
        item. Rewards then count hits the way evaluation does, also under SID collisions."""
        target_sid = trie.item_sid.to(self.sid_index.device)[target_ids]
        hit = self.sid_index == target_sid[:, None]
        return torch.where(hit, target_ids[:, None].expand_as(self.items), self.items)


def _result(trie: ItemTrie, sid: torch.Tensor, scores: torch.Tensor, sid_lp: torch.Tensor) -> Decoded:
    dev = sid.device
    completions = trie.completions.to(dev)[sid]  # (B, K, T)
    lengths = trie.sid_lengths.to(dev)[sid] + len(trie.suffix_ids)
    mask = torch.arange(completions.shape[-1], device=dev) < lengths[..., None]
    lp = torch.nn.functional.pad(sid_lp.to(scores.dtype), (0, completions.shape[-1] - sid_lp.shape[-1]))
    return Decoded(sid, trie.sid_first_item.to(dev)[sid], scores, completions, lp, mask)


# --------------------------------------------------------------------------- model calls


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(B, width)`` ids and attention mask of token-id lists (one copy per prompt)."""
    if not prompts:
        raise ValueError("no prompts")
    lengths = [len(p) for p in prompts]
    if min(lengths) == 0:
        raise ValueError("empty prompt")
    width = max(lengths)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for b, p in enumerate(prompts):  # one copy per prompt, not per beam
        ids[b, width - len(p) :] = torch.as_tensor(p, dtype=torch.long)
        mask[b, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def prefill(model, prompts, pad_id: int):
    """Run the (left-padded) prompts once; returns last-position logits, the KV cache, the mask and lengths."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1], out.past_key_values, mask, mask.sum(-1)


def _forward_step(model, tokens, cache, mask, positions):
    out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, None], past_key_values=cache, use_cache=True)
    return out.logits[:, -1], out.past_key_values


class _BufferedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose new keys/values are written into a preallocated buffer."""

    def update(self, key_states, value_states, *args, **kwargs):
        t = key_states.shape[-2]
        self.kbuf[:, :, self.length : self.length + t] = key_states
        self.vbuf[:, :, self.length : self.length + t] = value_states
        self.length += t
        self.keys, self.values = self.kbuf[:, :, : self.length], self.vbuf[:, :, : self.length]
        return self.keys, self.values


class BeamKV:
    """The prompt KV cache laid out for beams, in buffers with room for the generated tokens.

    HF's ``DynamicCache`` appends with ``torch.cat`` and reorders beams with ``index_select``: each
    copies the whole ``(B x beams)``-row cache, prompt included, at every step. Here the prompt part
    is copied once (into the beam rows); each new token is written in place, and a reorder that
    keeps the rows of each prompt together moves only the generated positions, since all beams of a
    prompt share its prompt part. Used only when every layer is a plain ``DynamicLayer`` (else the
    HF cache is used as is; the results are the same, see the tests).
    """

    @staticmethod
    def select_rows(cache, idx: torch.Tensor, extra: int) -> None:
        """Continue beam ``i`` from cache row ``idx[i]`` (a row of the same prompt), in place. The
        first call (``idx`` repeats each prompt row) lays the prompts out for the beams, with room
        for ``extra`` tokens; a cache of other layer types is reordered by HF."""
        layers = getattr(cache, "layers", None) or []
        if layers and all(type(layer) is DynamicLayer for layer in layers):
            repeats = idx.numel() // layers[0].keys.shape[0]
            for i, old in enumerate(layers):  # preallocated layers holding each prompt row `repeats` times
                b, h, length, d = old.keys.shape
                layer = _BufferedLayer()
                layer.dtype, layer.device, layer.is_initialized = old.keys.dtype, old.keys.device, True
                layer.kbuf = old.keys.new_empty(b * repeats, h, length + extra, d)
                layer.vbuf = old.values.new_empty(b * repeats, h, length + extra, old.values.shape[-1])
                layer.kbuf.view(b, repeats, h, length + extra, d)[:, :, :, :length] = old.keys[:, None]
                layer.vbuf.view(b, repeats, h, length + extra, -1)[:, :, :, :length] = old.values[:, None]
                layer.length = layer.prompt_length = length
                layer.keys, layer.values = layer.kbuf[:, :, :length], layer.vbuf[:, :, :length]
                cache.layers[i] = layer
        elif not layers or not all(type(layer) is _BufferedLayer for layer in layers):
            cache.reorder_cache(idx)
        elif idx.numel() == layers[0].kbuf.shape[0]:  # the same beam count: the generated positions only
            for layer in layers:
                gen = slice(layer.prompt_length, layer.length)
                layer.kbuf[:, :, gen] = layer.kbuf[idx, :, gen]
                layer.vbuf[:, :, gen] = layer.vbuf[idx, :, gen]
        else:  # the beam count changed: copy whole rows like HF
            for layer in layers:
                layer.kbuf, layer.vbuf = layer.kbuf.index_select(0, idx), layer.vbuf.index_select(0, idx)
                layer.keys, layer.values = layer.kbuf[:, :, : layer.length], layer.vbuf[:, :, : layer.length]


def _log_probs(logits: torch.Tensor, temperature: float, cols: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the whole vocabulary, returned for the trie's columns only (the
    normaliser needs every logit; the other log-probs are never written)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits[:, cols] - torch.logsumexp(logits, dim=-1, keepdim=True)


# --------------------------------------------------------------------------- beam search


@torch.no_grad()
def constrained_beam_search(
    model,
    prompts: Sequence[Sequence[int]],
    trie: ItemTrie,
    *,
    num_beams: int,
    temperature: float = 1.0,
) -> Decoded:
    """Top ``num_beams`` distinct valid SIDs per prompt, best first.

    One prefill per prompt (not per beam): its KV cache is then indexed into ``num_beams`` rows.
    Each step scores every (beam, SID token) pair of the batch as one tensor, keeps the best
    ``num_beams`` live prefixes and merges completed SIDs into a top-``num_beams`` pool; a live
    prefix that can no longer beat the pool is dropped. With fixed-length SIDs this is exactly HF
    beam search with ``length_penalty=0`` (and the forced suffix at zero cost).
    """
    return _search(model, prompts, trie, k=num_beams, width=num_beams, temperature=temperature)


@torch.no_grad()
def exact_top_k(model, prompts: Sequence[Sequence[int]], trie: ItemTrie, k: int, *, temperature: float = 1.0) -> Decoded:
    """The true top-``k`` SIDs by total log-probability: every trie prefix is kept (teacher forcing
    over the whole trie with one shared prompt cache). Cost grows with the catalog; for small
    catalogs, as an oracle or an evaluation mode."""
    return _search(model, prompts, trie, k=k, width=trie.max_width, temperature=temperature)


def _search(model, prompts, trie: ItemTrie, *, k: int, width: int, temperature: float) -> Decoded:
    if k > trie.num_sids:
        raise ValueError(f"asked for {k} distinct items but the catalog has only {trie.num_sids} distinct SIDs")
    if k < 1:
        raise ValueError("k must be >= 1")
    logits, cache, mask, lengths = prefill(model, prompts, trie.pad_id)
    dev = logits.device
    t = trie.to(dev)
    s = t.num_sid_cols
    cols, child = t.columns[:s], t.child[:, :s]
    b_size = logits.shape[0]
    rows = torch.arange(b_size, device=dev)[:, None]
    logp = _log_probs(logits, temperature, cols).view(b_size, 1, s)
    node = torch.zeros(b_size, 1, dtype=torch.long, device=dev)
    score = torch.zeros(b_size, 1, device=dev)
    hist = torch.zeros(b_size, 1, 0, device=dev)  # log-probs of each live prefix's tokens
    pool_score = torch.full((b_size, k), NEG_INF, device=dev)
    pool_sid = torch.zeros((b_size, k), dtype=torch.long, device=dev)
    pool_lp = torch.zeros((b_size, k, t.max_sid_len), device=dev)
    for depth in range(t.max_sid_len):
        nb = node.shape[1]
        nxt = child[node]  # (B, nb, S)
        valid = nxt >= 0
        nxt = nxt.clamp(min=0)
        cand = (score[..., None] + logp).masked_fill(~valid, NEG_INF)
        end = t.end_sid[nxt].masked_fill(~valid, -1)
        if bool((end >= 0).any()):
            # completed SIDs enter the pool (each trie leaf is reached by one beam only: no duplicates)
            fs, fi = cand.masked_fill(end < 0, NEG_INF).view(b_size, -1).topk(min(k, nb * s), dim=1)
            f_lp = torch.cat([hist.gather(1, (fi // s)[..., None].expand(-1, -1, depth)), logp.view(b_size, -1).gather(1, fi)[..., None]], -1)
            f_lp = torch.nn.functional.pad(f_lp, (0, t.max_sid_len - depth - 1))
            pool_score, top = torch.cat([pool_score, fs], 1).topk(k, dim=1)
            pool_sid = torch.cat([pool_sid, end.view(b_size, -1).gather(1, fi)], 1).gather(1, top)
            pool_lp = torch.cat([pool_lp, f_lp], 1).gather(1, top[..., None].expand(-1, -1, t.max_sid_len))
        if depth == t.max_sid_len - 1:
            break
        live = valid & t.has_sid_children[nxt]
        # log-probs only fall, so a prefix scoring below the pool's k-th item can never enter it
        live &= cand > pool_score[:, -1:, None]
        lcand = cand.masked_fill(~live, NEG_INF).view(b_size, -1)
        ls, li = lcand.topk(min(width, lcand.shape[1]), dim=1)
        n_live = int(torch.isfinite(ls).sum(1).max())  # fewer valid prefixes than beams: forward only those
        if n_live == 0:
            break
        ls, li = ls[:, :n_live], li[:, :n_live]
        origin, col = li // s, li % s
        hist = torch.cat([hist.gather(1, origin[..., None].expand(-1, -1, depth)), logp.view(b_size, -1).gather(1, li)[..., None]], -1)
        node, score = nxt.view(b_size, -1).gather(1, li), ls
        BeamKV.select_rows(cache, (rows * nb + origin).view(-1), t.max_sid_len)  # depth 0: origin is 0
        step_mask = torch.cat([mask.repeat_interleave(n_live, 0), torch.ones(b_size * n_live, depth + 1, dtype=mask.dtype, device=dev)], 1)
        logits, cache = _forward_step(model, cols[col].view(-1), cache, step_mask, (lengths + depth).repeat_interleave(n_live))
        logp = _log_probs(logits, temperature, cols).view(b_size, n_live, s)
    if not bool(torch.isfinite(pool_score).all()):
        bad = (~torch.isfinite(pool_score)).any(1).nonzero().flatten().tolist()
        raise DeadEndError(f"prompts {bad[:5]}: fewer than {k} items with a non-zero probability under the trie")
    return _result(t, pool_sid, pool_score, pool_lp)


# --------------------------------------------------------------------------- sampling


@torch.no_grad()
def constrained_sample(
    model,
    prompts: Sequence[Sequence[int]],
    trie: ItemTrie,
    *,
    num_samples: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Decoded:
    """``num_samples`` completions per prompt, each drawn token by token from the model's
    distribution renormalised over the tokens the trie allows (what HF sampling with
    :class:`TrieLogitsProcessor` does). Samples may repeat (GRPO's ``sample`` rollouts).

    ``token_logprobs`` are the model's own (temperature-scaled, unconstrained) log-probs of the
    drawn SID tokens, as a policy-gradient loss recomputes them. Where one SID is a prefix of
    another, stopping (``"\\n"``) competes with the longer SIDs by its log-prob.
    """
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    logits, cache, mask, lengths = prefill(model, prompts, trie.pad_id)
    dev = logits.device
    t = trie.to(dev)
    s = t.num_sid_cols
    stop_col = s  # the suffix's first token ("\n") is the first non-SID column
    cols = t.columns[: s + 1]
    b_size, g = logits.shape[0], num_samples
    n = b_size * g
    cache.reorder_cache(torch.arange(b_size, device=dev).repeat_interleave(g))
    logp = _log_probs(logits, temperature, cols).repeat_interleave(g, 0)
    node = torch.zeros(n, dtype=torch.long, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    sid = torch.zeros(n, dtype=torch.long, device=dev)
    score = torch.zeros(n, device=dev)
    lp = torch.zeros(n, t.max_sid_len, device=dev)
    for depth in range(t.max_sid_len + 1):
        allowed = torch.cat([t.child[node, :s] >= 0, ((t.end_sid[node] >= 0) & t.has_sid_children[node])[:, None]], 1)
        allowed &= torch.isfinite(logp)
        allowed[done] = False
        stuck = ~done & ~allowed.any(1)
        if bool(stuck.any()):
            raise DeadEndError(f"{int(stuck.sum())} sampled rows have no allowed token with non-zero probability at depth {depth}")
        masked = logp.masked_fill(~allowed, NEG_INF)
        masked[done, 0] = 0.0  # finished rows draw a dummy column, ignored below
        choice = torch.multinomial(torch.softmax(masked, -1), 1, generator=generator).squeeze(1)
        active = ~done
        stop = active & (choice == stop_col)
        sid = torch.where(stop, t.end_sid[node], sid)
        step = active & ~stop
        chosen_lp = logp.gather(1, choice[:, None]).squeeze(1)
        if depth < t.max_sid_len:
            lp[:, depth] = torch.where(step, chosen_lp, lp[:, depth])
        score = torch.where(step, score + chosen_lp, score)
        node = torch.where(step, t.child[node, choice.clamp(max=s - 1)], node)
        finished_here = step & (t.end_sid[node] >= 0) & ~t.has_sid_children[node]
        sid = torch.where(finished_here, t.end_sid[node], sid)
        done = done | stop | finished_here
        if bool(done.all()):
            break
        tokens = torch.where(step, cols[choice.clamp(max=s - 1)], torch.full_like(choice, t.pad_id))
        step_mask = torch.cat([mask.repeat_interleave(g, 0), torch.ones(n, depth + 1, dtype=mask.dtype, device=dev)], 1)
        logits, cache = _forward_step(model, tokens, cache, step_mask, (lengths + depth).repeat_interleave(g))
        logp = _log_probs(logits, temperature, cols)
    return _result(t, sid.view(b_size, g), score.view(b_size, g), lp.view(b_size, g, -1))


# --------------------------------------------------------------------------- HF generate


class TrieLogitsProcessor(LogitsProcessor):
    """A stateless ``LogitsProcessor`` that allows only trie continuations in HF ``generate``.

    ``prompt_length`` is the (left-padded) prompt width of the ``generate`` call. Each call
    recomputes every row's node from ``input_ids[:, prompt_length:]``, masks all other tokens to
    ``-inf`` (vectorised: one gather and one scatter), and gives forced tokens (the suffix after a
    complete SID, EOS/pad after EOS) a score of 0 so they never change beam rankings.

    Rows outside the trie: HF beam search keeps candidates of score ``-inf`` as running beams
    when fewer than ``2 * num_beams`` continuations are allowed, and those carry a masked token.
    With ``on_dead_end="eos"`` (default) such a row may only emit EOS, so its score stays
    ``-inf`` and it ends: never an unconstrained step. ``"raise"`` raises :class:`DeadEndError`
    instead (use it with sampling, where a masked token can never be drawn). ``dead_rows`` counts
    the rows seen outside the trie (a statistic; the masks never depend on it).
    """

    def __init__(self, trie: ItemTrie, prompt_length: int, *, on_dead_end: str = "eos"):
        if on_dead_end not in ("eos", "raise"):
            raise ValueError(f"on_dead_end must be 'eos' or 'raise', got {on_dead_end!r}")
        self.trie = trie
        self.prompt_length = int(prompt_length)
        self.on_dead_end = on_dead_end
        self.dead_rows = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t = self.trie
        node = t.path(input_ids[:, self.prompt_length :])[:, -1]
        dead = node < 0
        if bool(dead.any()):
            if self.on_dead_end == "raise":
                rows = dead.nonzero().flatten().tolist()
                raise DeadEndError(f"rows {rows[:5]} generated a token sequence outside the item trie")
            if not self.dead_rows:  # said once per processor (one generate call); the count keeps growing
                log.warning("TrieLogitsProcessor: %d row(s) left the item trie (HF keeps -inf beams running); they may only end "
                            "(EOS), and a returned sequence from them is not a catalogue item: check .dead_rows", int(dead.sum()))
            self.dead_rows += int(dead.sum())
            node = torch.where(dead, t.done_node, node)  # `done` allows only EOS / pad
        cols = t.columns.to(scores.device)
        allowed = t.child.to(scores.device)[node] >= 0
        vals = scores[:, cols].masked_fill(t.forced.to(scores.device)[node][:, None], 0.0).masked_fill(~allowed, NEG_INF)
        if bool((~torch.isfinite(vals).any(1)).any()):
            raise DeadEndError("a row has no allowed token with a finite score (another processor removed them all)")
        out = torch.full_like(scores, NEG_INF)
        out[:, cols] = vals
        return out


def prefix_allowed_tokens_fn(trie: ItemTrie, prompt_length: int):
    """The same constraint as HF's ``prefix_allowed_tokens_fn(batch_id, ids) -> list[int]``
    callback (one Python call per row and step, as upstream). Slow by design: it is the baseline
    of ``benchmarks/bench_beam_search.py``. Forced tokens keep their model log-prob here."""
    columns = trie.columns.tolist()
    child = trie.child

    def fn(batch_id: int, input_ids: torch.Tensor) -> list[int]:  # noqa: ARG001
        node = int(trie.path(input_ids[None, prompt_length:])[0, -1])
        if node < 0:  # a -inf beam HF keeps running (see TrieLogitsProcessor): end it
            return [trie.eos_id]
        return [columns[c] for c in (child[node] >= 0).nonzero().flatten().tolist()]

    return fn


def generation_config(trie: ItemTrie, *, num_beams: int = 1, num_return_sequences: int = 1, do_sample: bool = False, temperature: float = 1.0):
    """An explicit ``GenerationConfig`` for constrained SID generation, so a checkpoint's shipped
    sampling / repetition-penalty defaults never leak in (spec §6): no top-k/top-p, length
    penalty 0, just enough new tokens for the longest SID plus the suffix."""
    beam = {"length_penalty": 0.0, "early_stopping": True} if num_beams > 1 else {}
    return GenerationConfig(
        max_new_tokens=trie.max_sid_len + len(trie.suffix_ids),
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        do_sample=do_sample,
        temperature=temperature,
        top_k=None,
        top_p=None,
        repetition_penalty=1.0,
        eos_token_id=trie.eos_id,
        pad_token_id=trie.pad_id,
        return_dict_in_generate=False,
        **beam,
    )
