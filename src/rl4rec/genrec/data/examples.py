"""Sequential examples and the Amazon CSV format they are read from and written to.

One CSV row is one (user, next item) sample. The loader needs only ``user_id``,
``history_item_id`` and ``item_id``; the title and SID columns (MiniOneRec layout) and the
timestamp columns (LatentR³ layout) are checked against the catalog when present. List columns
are Python literals parsed with :func:`ast.literal_eval` (never ``eval``) and read with the
``csv`` module (titles contain commas and quotes).

A malformed row raises :class:`DataFormatError` with ``file:line: reason``. With
``skip_bad_rows=True`` such rows are dropped instead, and the count is returned and logged.
"""

from __future__ import annotations

import ast
import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl4rec.genrec.data.catalog import DataFormatError, ItemCatalog

log = logging.getLogger(__name__)

__all__ = ["SeqExample", "read_examples", "write_examples", "pad_histories", "REQUIRED_COLUMNS", "MAX_HISTORY"]

REQUIRED_COLUMNS = ("user_id", "history_item_id", "item_id")
MAX_HISTORY = 10
CANONICAL_COLUMNS = (
    "user_id",
    "history_item_title",
    "item_title",
    "history_item_id",
    "item_id",
    "history_item_sid",
    "item_sid",
)


@dataclass(frozen=True)
class SeqExample:
    """A next-item sample. Targets travel with the example; nothing is looked up by string.

    Attributes:
        user_id: the user, e.g. ``"A4042"``.
        history: item ids, oldest first (1..10 items in the released files).
        target_item_id: the item that came next.
        timestamp: the target's unix time when the source has it, else ``None``.
        history_timestamps: the history items' unix times when known, else ``None``.
        source: provenance, ``"<file>:<line>"`` for a CSV row or
            ``"r1:<file>:<line>[:j]"`` for a rebuilt one (the prefix of length j of that row).
    """

    user_id: str
    history: tuple[int, ...]
    target_item_id: int
    timestamp: int | None = None
    history_timestamps: tuple[int, ...] | None = None
    source: str = ""


def _literal_list(
    text: str, column: str, elem: type | tuple[type, ...], history: Sequence[int] | None = None
) -> list[Any]:
    """The list literal of ``column``; with ``history``, a column parallel to it (the same length)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"column {column}: not a Python list literal: {text[:80]!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"column {column}: expected a list, got {type(value).__name__}")
    for v in value:
        if not isinstance(v, elem) or isinstance(v, bool):
            raise ValueError(f"column {column}: element {v!r} is not {getattr(elem, '__name__', elem)}")
    if history is not None and len(value) != len(history):
        raise ValueError(f"{column} has {len(value)} entries, history_item_id has {len(history)}")
    return list(value)


def _int(text: str, column: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError(f"column {column}: {text!r} is not an integer") from None


def _parse_row(row: dict[str, str], catalog: ItemCatalog, max_history: int) -> SeqExample:
    n = len(catalog)
    user = row["user_id"]
    if not user:
        raise ValueError("column user_id: empty")
    history = _literal_list(row["history_item_id"], "history_item_id", int)
    target = _int(row["item_id"], "item_id")
    if not 1 <= len(history) <= max_history:
        raise ValueError(f"history has {len(history)} items, expected 1..{max_history}")
    for i in (*history, target):
        if not 0 <= i < n:
            raise ValueError(f"item id {i} out of range [0, {n}) of catalog {catalog.name!r}")
    if row.get("history_item_title") is not None:
        titles = _literal_list(row["history_item_title"], "history_item_title", str, history)
        for pos, (i, t) in enumerate(zip(history, titles, strict=True)):
            if t != catalog.titles[i]:
                raise ValueError(f"history_item_title[{pos}] {t!r} differs from the catalog title of item {i} {catalog.titles[i]!r}")
    if row.get("item_title") is not None and row["item_title"] != catalog.titles[target]:
        raise ValueError(f"item_title {row['item_title']!r} differs from the catalog title of item {target} {catalog.titles[target]!r}")
    if row.get("history_item_sid") is not None or row.get("item_sid") is not None:
        if catalog.sids is None:
            raise ValueError("the file has SID columns but the catalog has no SIDs (index.json or info.txt SID column missing)")
        if row.get("history_item_sid") is not None:
            sids = _literal_list(row["history_item_sid"], "history_item_sid", str, history)
            for pos, (i, s) in enumerate(zip(history, sids, strict=True)):
                if s != catalog.sids.string(i):
                    raise ValueError(f"history_item_sid[{pos}] {s} differs from index.json for item {i} ({catalog.sids.string(i)})")
        if row.get("item_sid") is not None and row["item_sid"] != catalog.sids.string(target):
            raise ValueError(f"item_sid {row['item_sid']} differs from index.json for item {target} ({catalog.sids.string(target)})")
    timestamp = hist_ts = None
    if row.get("timestamp") not in (None, ""):
        timestamp = _int(row["timestamp"], "timestamp")
    if row.get("history_timestamp") not in (None, ""):
        hist_ts = tuple(_literal_list(row["history_timestamp"], "history_timestamp", int, history))
    return SeqExample(user, tuple(history), target, timestamp, hist_ts)


def read_examples(
    path: str | Path,
    catalog: ItemCatalog,
    *,
    skip_bad_rows: bool = False,
    max_history: int = MAX_HISTORY,
) -> tuple[list[SeqExample], int]:
    """Read and validate one CSV split. Returns ``(examples, n_skipped)``.

    Checks every row: list columns parse, the parallel lists have equal lengths, the history has
    1..``max_history`` items, ids are in the catalog's range, and titles / SID strings, when the
    file has those columns, equal the catalog's (the SID columns against ``index.json``).
    """
    path = Path(path)
    examples: list[SeqExample] = []
    skipped = 0
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(f"{path}:1: empty file (expected a header row)") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(f"{path}:1: header lacks column(s) {', '.join(missing)} (has {', '.join(header)})")
        if len(set(header)) != len(header):
            raise DataFormatError(f"{path}:1: duplicate column names in the header")
        start = reader.line_num + 1
        for fields in reader:
            lineno, start = start, reader.line_num + 1
            try:
                if len(fields) != len(header):
                    raise ValueError(f"{len(fields)} fields, the header has {len(header)}")
                ex = _parse_row(dict(zip(header, fields, strict=True)), catalog, max_history)
            except ValueError as err:
                if not skip_bad_rows:
                    raise DataFormatError(f"{path}:{lineno}: {err}") from None
                skipped += 1
                if skipped <= 5:
                    log.warning("skipping %s:%d: %s", path.name, lineno, err)
                continue
            examples.append(SeqExample(ex.user_id, ex.history, ex.target_item_id, ex.timestamp, ex.history_timestamps, f"{path.name}:{lineno}"))
    if skipped:
        log.warning("%s: skipped %d malformed row(s) of %d (skip_bad_rows=true)", path, skipped, skipped + len(examples))
    return examples, skipped


def write_examples(path: str | Path, examples: Iterable[SeqExample], catalog: ItemCatalog) -> Path:
    """Write examples in the MiniOneRec column layout (SID columns only when the catalog has SIDs;
    ``history_timestamp``/``timestamp`` appended when the examples carry times)."""
    path = Path(path)
    examples = list(examples)
    with_sids = catalog.sids is not None
    with_time = bool(examples) and all(e.timestamp is not None and e.history_timestamps is not None for e in examples)
    columns = [c for c in CANONICAL_COLUMNS if with_sids or "sid" not in c]
    if with_time:
        columns += ["history_timestamp", "timestamp"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for e in examples:
            row = {
                "user_id": e.user_id,
                "history_item_title": repr([catalog.titles[i] for i in e.history]),
                "item_title": catalog.titles[e.target_item_id],
                "history_item_id": repr(list(e.history)),
                "item_id": e.target_item_id,
            }
            if with_sids:
                row["history_item_sid"] = repr([catalog.sid(i) for i in e.history])
                row["item_sid"] = catalog.sid(e.target_item_id)
            if with_time:
                row["history_timestamp"] = repr(list(e.history_timestamps or ()))
                row["timestamp"] = e.timestamp
            writer.writerow([row[c] for c in columns])
    return path


def pad_histories(
    histories: Sequence[Sequence[int]], max_len: int = MAX_HISTORY, pad: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """``(B, max_len)`` int64 matrix of the last ``max_len`` items of each history, and lengths.

    The pads go at the end (items start at column 0, oldest first), as SASRec expects.
    """
    out = np.full((len(histories), max_len), pad, dtype=np.int64)
    lengths = np.zeros(len(histories), dtype=np.int64)
    for b, h in enumerate(histories):
        h = list(h)[-max_len:]
        lengths[b] = len(h)
        out[b, : len(h)] = h
    return out, lengths
