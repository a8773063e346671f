"""Title grounding and the title trie (spec latent_reasoning.md §3.1, §3.3).

Titles are not unique (CDs_and_Vinyl: 5,841 items, 5,377 distinct titles), so a generated title
grounds to a *set* of items. :class:`TitleIndex` numbers the distinct normalised titles ("title
groups"); a prediction hits when its group is the target's group (the release's title matching),
and the share of targets whose title is shared is reported next to every metric, never resolved
silently in the target's favour.

:class:`TitleTrie` holds every catalogue title as the token path of ``"<title>"\\n`` + EOS in
compressed-sparse-row form (children of a node are a contiguous, token-sorted slice), so the
allowed tokens of a whole batch of beams are one gather, and a transition is one
``searchsorted``. Identical titles share one path; its end node records the title group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["normalize_title", "TitleIndex", "TitleTrie"]


def normalize_title(text: str) -> str:
    """Spec §3.3: strip spaces/newlines, then double quotes, then spaces (both ends)."""
    return text.strip(" \n\r\t").strip('"').strip(" ")


@dataclass
class TitleIndex:
    """Distinct normalised titles of a catalogue and the items behind each."""

    titles: list[str]  # distinct normalised titles, in first-item order
    group_of_item: np.ndarray  # (N,) title group of each item
    raw_titles: list[str]  # catalogue title of each item (what the trie encodes)

    @classmethod
    def from_titles(cls, raw_titles: Sequence[str]) -> TitleIndex:
        ids: dict[str, int] = {}
        groups = np.empty(len(raw_titles), dtype=np.int64)
        for i, t in enumerate(raw_titles):
            groups[i] = ids.setdefault(normalize_title(t), len(ids))
        return cls(list(ids), groups, list(raw_titles))

    @property
    def num_groups(self) -> int:
        return len(self.titles)

    def group_sizes(self) -> np.ndarray:
        return np.bincount(self.group_of_item, minlength=self.num_groups)

    def group_of_text(self, text: str) -> int:
        """Title group of a generated string, ``-1`` when it is not a catalogue title."""
        if not hasattr(self, "_lookup"):
            self._lookup = {t: g for g, t in enumerate(self.titles)}
        return self._lookup.get(normalize_title(text), -1)

    def shared(self, items: Sequence[int] | np.ndarray) -> np.ndarray:
        """Per item: does another catalogue item carry the same title?"""
        return self.group_sizes()[self.group_of_item[np.asarray(items, dtype=np.int64)]] > 1


class TitleTrie:
    """Prefix tree of title token paths (each ending in EOS) in CSR form.

    ``child_ptr[n]:child_ptr[n+1]`` indexes node ``n``'s children in ``child_tok`` (sorted) and
    ``child_node``; ``end_group[n]`` is the title group completed at ``n`` (``-1`` elsewhere);
    ``max_total[n]`` is the longest full path through ``n`` (for the beam-search bound).
    """

    def __init__(self, paths: Sequence[Sequence[int]], groups: Sequence[int], eos_id: int):
        if not paths:
            raise ValueError("a title trie needs at least one title")
        children: list[dict[int, int]] = [{}]
        longest = [0]  # longest full path through each node
        end = [-1]
        for path, g in zip(paths, groups, strict=True):
            if not path or path[-1] != eos_id:
                raise ValueError(f"every title path must end with EOS ({eos_id}); got {list(path)[-3:]}")
            if eos_id in path[:-1]:
                raise ValueError("a title path contains EOS before its end")
            node = 0
            for tok in path:
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children[node][tok] = nxt
                    children.append({})
                    longest.append(0)
                    end.append(-1)
                node = nxt
                longest[node] = max(longest[node], len(path))
            if end[node] == -1:  # identical token paths share one end; the first title's group wins
                end[node] = int(g)
        longest[0] = max(longest)  # every path runs through the root
        n = len(children)
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(c) for c in children], out=ptr[1:])
        edges = np.array([(t, c[t]) for c in children for t in sorted(c)], dtype=np.int64).reshape(-1, 2)
        self.eos_id = int(eos_id)
        self.num_nodes = n
        self.num_paths = len(paths)
        self.child_ptr = torch.from_numpy(ptr)
        self.child_tok = torch.from_numpy(edges[:, 0].copy())
        self.child_node = torch.from_numpy(edges[:, 1].copy())
        self.edge_key = self.child_tok.new_empty(0)  # built lazily with the vocabulary size
        self.end_group = torch.tensor(end, dtype=torch.long)
        self.max_total = torch.tensor(longest, dtype=torch.long)
        self.max_depth = longest[0]
        self._vocab = 0

    @classmethod
    def from_index(cls, index: TitleIndex, tokenizer) -> TitleTrie:
        """One path per distinct catalogue title, encoded exactly as the training target."""
        from rl4rec.genrec.latent.prompts import encode_target

        group_of: dict[str, int] = {}  # first item's group of each distinct raw title
        for raw, g in zip(index.raw_titles, index.group_of_item, strict=True):
            group_of.setdefault(raw, int(g))
        return cls([encode_target(tokenizer, raw) for raw in group_of], list(group_of.values()), tokenizer.eos_token_id)

    def to(self, device) -> TitleTrie:
        for name in ("child_ptr", "child_tok", "child_node", "end_group", "max_total"):
            setattr(self, name, getattr(self, name).to(device))
        self._vocab = 0
        return self

    def step(self, node: torch.Tensor, token: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """Child of each ``node`` along ``token`` (same shapes), ``-1`` where there is none."""
        if self._vocab != vocab_size:  # the edge keys, rebuilt when the vocabulary size changes
            parent = torch.repeat_interleave(torch.arange(self.num_nodes, device=self.child_ptr.device), self.child_ptr.diff())
            self.edge_key = parent * vocab_size + self.child_tok  # sorted: parents ascending, tokens sorted
            self._vocab = vocab_size
        keys = self.edge_key
        q = node.long() * vocab_size + token.long()
        pos = torch.searchsorted(keys, q.reshape(-1)).clamp(max=max(keys.numel() - 1, 0))
        found = keys[pos] == q.reshape(-1)
        return torch.where(found, self.child_node[pos], torch.full_like(pos, -1)).view_as(q)

    def allowed(self, node: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """``(M, vocab_size)`` bool: the tokens that continue each of ``M`` nodes."""
        node = node.reshape(-1).long()
        start, stop = self.child_ptr[node], self.child_ptr[node + 1]
        counts = stop - start
        rows = torch.repeat_interleave(torch.arange(node.numel(), device=node.device), counts)
        first = torch.repeat_interleave(start - (counts.cumsum(0) - counts), counts)
        edges = first + torch.arange(rows.numel(), device=node.device)
        mask = torch.zeros(node.numel(), vocab_size, dtype=torch.bool, device=node.device)
        mask[rows, self.child_tok[edges]] = True
        return mask

    def __repr__(self) -> str:
        return f"TitleTrie({self.num_paths} title paths, {self.num_nodes} nodes, longest {self.max_depth} tokens)"
