"""Semantic IDs: item id <-> tuple of codes <-> token strings, collisions and their handling.

An item's SID is one code per level; level ``l`` is written with the letter ``"abcde..."[l]``
as the token ``<{letter}_{code}>`` and the SID string is the concatenation, e.g.
``<a_165><b_35><c_57>`` (spec genrec.md §1.3). SIDs are always fixed-length here: a dedup
level, when added, is added to *every* item (``<d_0>`` for an item whose SID was unique), so
tries and prompts stay uniform (§2.6).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl4rec.errors import InputError

__all__ = ["SIDCodec", "SIDFormatError", "LETTERS", "add_extra_level", "reassign_last_level"]

LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"<([a-z])_(\d+)>")


class SIDFormatError(InputError):
    """A SID token or string does not have the ``<letter_code>`` form or the expected levels."""


def parse_sid(text: str) -> tuple[int, ...]:
    """``"<a_1><b_22><c_3>"`` -> ``(1, 22, 3)``; letters must be a, b, c, ... in order."""
    codes = []
    pos = 0
    for level, m in enumerate(_TOKEN.finditer(text)):
        if m.start() != pos or m.group(1) != LETTERS[level]:
            raise SIDFormatError(f"bad SID string {text!r}: expected token <{LETTERS[level]}_N> at offset {pos}")
        codes.append(int(m.group(2)))
        pos = m.end()
    if pos != len(text) or not codes:
        raise SIDFormatError(f"bad SID string {text!r}: expected tokens like <a_1><b_2><c_3>")
    return tuple(codes)


class SIDCodec:
    """The SIDs of a catalog: an ``(N, L)`` integer code matrix in item-id order.

    >>> codec = SIDCodec(np.array([[1, 2], [1, 3]]))
    >>> codec.string(1)
    '<a_1><b_3>'
    >>> codec.items_of("<a_1><b_3>")
    [1]
    """

    def __init__(self, codes: np.ndarray | Sequence[Sequence[int]], codebook_sizes: Sequence[int] | None = None):
        arr = np.asarray(codes, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] < 1:
            raise SIDFormatError(f"SID codes must be an (N, L) matrix with L >= 1, got shape {arr.shape}")
        if arr.shape[1] > len(LETTERS):
            raise SIDFormatError(f"at most {len(LETTERS)} SID levels, got {arr.shape[1]}")
        if arr.size and arr.min() < 0:
            raise SIDFormatError("SID codes must be non-negative")
        self.codes = arr
        self.codes.setflags(write=False)
        if codebook_sizes is None:
            codebook_sizes = [int(arr[:, lv].max()) + 1 if len(arr) else 0 for lv in range(arr.shape[1])]
        self.codebook_sizes = tuple(int(k) for k in codebook_sizes)
        if len(self.codebook_sizes) != arr.shape[1]:
            raise SIDFormatError(f"{len(self.codebook_sizes)} codebook sizes for {arr.shape[1]} levels")
        self._strings = ["".join(f"<{LETTERS[lv]}_{c}>" for lv, c in enumerate(row)) for row in arr.tolist()]
        groups: dict[str, list[int]] = defaultdict(list)
        for item, s in enumerate(self._strings):
            groups[s].append(item)
        self._items_of = dict(groups)

    # -- lookups -----------------------------------------------------------------------------
    @property
    def num_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_levels(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return self.num_items

    def tokens(self, item: int) -> tuple[str, ...]:
        return tuple(f"<{LETTERS[lv]}_{int(c)}>" for lv, c in enumerate(self.codes[item]))

    def string(self, item: int) -> str:
        return self._strings[item]

    @property
    def strings(self) -> list[str]:
        """The SID string of every item, in item-id order."""
        return list(self._strings)

    def items_of(self, sid: str) -> list[int]:
        """Item ids with this SID string (several when SIDs collide; empty when unknown)."""
        return list(self._items_of.get(sid, []))

    def group_ids(self) -> np.ndarray:
        """``(N,)`` index of each item's SID among the distinct SIDs (for collision-aware hits)."""
        index = {s: g for g, s in enumerate(self._items_of)}
        return np.asarray([index[s] for s in self._strings], dtype=np.int64)

    def vocabulary(self) -> list[str]:
        """Every token used, level by level, codes ascending (e.g. the 560 released tokens)."""
        return [f"<{LETTERS[lv]}_{c}>" for lv in range(self.num_levels) for c in np.unique(self.codes[:, lv]).tolist()]

    # -- reports -----------------------------------------------------------------------------
    def collisions(self) -> dict[str, Any]:
        """Collision statistics: distinct SIDs, items in shared SIDs, group count, rate."""
        sizes = [len(v) for v in self._items_of.values()]
        shared = [s for s in sizes if s > 1]
        n = self.num_items
        return {
            "items": n,
            "distinct_sids": len(sizes),
            "collision_rate": (n - len(sizes)) / n if n else 0.0,  # (N - #unique) / N, as upstream
            "colliding_groups": len(shared),
            "items_in_colliding_groups": int(sum(shared)),
            "largest_group": int(max(sizes)) if sizes else 0,
        }

    def usage(self) -> list[dict[str, Any]]:
        """Per level: distinct codes used, codebook size, usage fraction and the code perplexity."""
        out = []
        for lv in range(self.num_levels):
            counts = np.bincount(self.codes[:, lv], minlength=self.codebook_sizes[lv])
            p = counts[counts > 0] / max(self.num_items, 1)
            perplexity = float(np.exp(-(p * np.log(p)).sum())) if p.size else 0.0
            used = int((counts > 0).sum())
            out.append(
                {
                    "level": LETTERS[lv],
                    "codebook_size": self.codebook_sizes[lv],
                    "codes_used": used,
                    "usage": used / self.codebook_sizes[lv] if self.codebook_sizes[lv] else 0.0,
                    "perplexity": perplexity,
                    "max_items_per_code": int(counts.max()) if counts.size else 0,
                }
            )
        return out

    # -- I/O ---------------------------------------------------------------------------------
    def save_index_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({str(i): list(self.tokens(i)) for i in range(self.num_items)}))
        return path

    @classmethod
    def from_index_json(cls, source: str | Path | Mapping[str, Sequence[str]], num_items: int | None = None) -> SIDCodec:
        """Read ``{"<item_id>": ["<a_i>", "<b_j>", ...]}``; keys must be ``"0".."N-1"``."""
        where = str(source) if not isinstance(source, Mapping) else "index mapping"
        if isinstance(source, Mapping):
            data = source
        else:
            try:
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise SIDFormatError(f"{where}: not a JSON file ({err})") from None
        if not isinstance(data, Mapping):
            raise SIDFormatError(f"{where}: expected an object {{item id: [SID tokens]}}, got {type(data).__name__}")
        n = len(data) if num_items is None else num_items
        if set(data) != {str(i) for i in range(n)}:
            missing = sorted(set(map(str, range(n))) - set(data), key=int)[:5]
            extra = sorted(set(data) - set(map(str, range(n))))[:5]
            raise SIDFormatError(f"{where}: keys must be '0'..'{n - 1}' (missing {missing}, unexpected {extra})")
        rows = []
        for i in range(n):
            tokens = data[str(i)]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise SIDFormatError(f"{where}: item {i}: expected a list of SID token strings, got {tokens!r}"[:300])
            try:
                rows.append(parse_sid("".join(tokens)))
            except SIDFormatError as err:
                raise SIDFormatError(f"{where}: item {i}: {err}") from None
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            raise SIDFormatError(
                f"{where}: SIDs have different lengths {sorted(lengths)}; rl4rec needs fixed-length SIDs "
                "(re-run build-sids with dedup=extra_level)"
            )
        return cls(np.asarray(rows, dtype=np.int64).reshape(n, -1))

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> SIDCodec:
        rows = [parse_sid(s) for s in strings]
        if len({len(r) for r in rows}) > 1:
            raise SIDFormatError("SID strings have different lengths")
        return cls(np.asarray(rows, dtype=np.int64).reshape(len(rows), -1))


# --------------------------------------------------------------------------- collision handling


def add_extra_level(codec: SIDCodec) -> SIDCodec:
    """Append one level to every item: its ordinal within its collision group in item-id order.

    Unique SIDs get ``0``; a group of ``m`` items sharing a SID gets ``0..m-1``. Afterwards every
    item has a distinct SID (spec §2.6 ``extra_level``; upstream §2.4 adds the level only to
    colliding items, which makes SIDs variable-length).
    """
    extra = np.zeros(codec.num_items, dtype=np.int64)
    for items in codec._items_of.values():
        extra[items] = np.arange(len(items))
    sizes = (*codec.codebook_sizes, int(extra.max()) + 1 if extra.size else 1)
    return SIDCodec(np.concatenate([codec.codes, extra[:, None]], axis=1), sizes)


def reassign_last_level(codec: SIDCodec, residuals: np.ndarray, codebook: np.ndarray) -> SIDCodec:
    """Resolve collisions by moving items to the nearest *free* last-level code of their prefix.

    ``residuals``: ``(N, e)`` the residual each item quantizes at the last level; ``codebook``:
    ``(K, e)`` the last level's centroids. Within each colliding group, the item closest to the
    shared centroid keeps it; the others take, in order of their distance, the nearest code that
    no item with the same prefix uses. Groups that cannot be spread (more items with a prefix than
    codes) keep their collisions; run :func:`add_extra_level` afterwards to guarantee uniqueness.
    """
    codes = codec.codes.copy()
    residuals = np.asarray(residuals, dtype=np.float64)
    codebook = np.asarray(codebook, dtype=np.float64)
    k = codebook.shape[0]
    by_prefix: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for item, row in enumerate(codes.tolist()):
        by_prefix[tuple(row[:-1])].append(item)
    for items in by_prefix.values():
        last = codes[items, -1]
        used = set(last.tolist())
        if len(used) == len(items):
            continue
        dist = ((residuals[items][:, None, :] - codebook[None]) ** 2).sum(-1)  # (g, K)
        keep: dict[int, int] = {}
        movers = []
        for j in np.argsort(dist[np.arange(len(items)), last], kind="stable"):
            if last[j] in keep:
                movers.append(j)
            else:
                keep[int(last[j])] = j
        for j in movers:
            free = [c for c in np.argsort(dist[j], kind="stable").tolist() if c not in used]
            if not free:
                break
            codes[items[j], -1] = free[0]
            used.add(free[0])
    sizes = list(codec.codebook_sizes)
    sizes[-1] = max(sizes[-1], k)
    return SIDCodec(codes, sizes)
