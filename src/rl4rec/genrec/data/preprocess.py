"""Raw Amazon Reviews 2018-style files -> a category folder in the release format (spec genrec.md §1.1).

Input: a review file (JSON lines: ``reviewerID``, ``asin``, ``unixReviewTime``) and a metadata
file (JSON lines: ``asin``, ``title``, ``description``, ``brand``), either possibly gzipped;
lines that are Python-literal dicts (older dumps) are read with :func:`ast.literal_eval`.

Steps, as upstream:

1. Items: drop a missing title, a title with an HTML ``<span id`` fragment, a title of <= 1
   character or of more than 20 words; unescape ``&quot;``/``&amp;``; strip spaces and ``"``.
2. Reviews of kept items with ``start <= unixReviewTime <= end``.
3. Iterative k-core (users and items, K = 5) until stable. If fewer than ``min_items`` items
   survive, the start year moves back by one and everything is redone (not before 1996).
4. Per user, interactions sorted by time (stable; repeats kept); every position ``i >= 1`` is a
   sample with the previous <= 10 items as history.
5. All samples sorted stably by target time and cut 8:1:1 into train/valid/test
   (``int(0.8 N)``, ``int(0.9 N)``).

Output: ``<C>.train.csv``/``valid``/``test`` (with timestamps), ``<C>.info.txt``,
``<C>.item.json`` and ``<C>.preprocess.json`` (what was kept at each step). SIDs are built
afterwards by ``rl4rec genrec build-sids``.
"""

from __future__ import annotations

import ast
import datetime as dt
import gzip
import html
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rl4rec.config import field
from rl4rec.genrec.data.catalog import DataFormatError, ItemCatalog
from rl4rec.genrec.data.examples import MAX_HISTORY, SeqExample, write_examples

log = logging.getLogger(__name__)

__all__ = [
    "PreprocessConfig",
    "preprocess_amazon",
    "sliding_window_samples",
    "chronological_split",
    "clean_title",
    "write_category",
]


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``rl4rec genrec preprocess`` (defaults: the MiniOneRec Industrial release)."""

    name: str = field("Category", "category name: output files are <name>.train.csv, <name>.info.txt, ...")
    # YAML reads an unquoted 2016-10-01 as a date: both forms are accepted
    start: str | dt.date = field("2016-10-01", "first review day kept (YYYY-MM-DD, inclusive)")
    end: str | dt.date = field("2018-11-01", "last review day kept (YYYY-MM-DD, inclusive)")
    k_core: int = field(5, "minimum interactions per user and per item (iterated until stable)", ge=1)
    min_items: int = field(3000, "move the start year back while fewer items survive", ge=0)
    earliest_year: int = field(1996, "the start year never moves before this year", ge=1970)
    max_title_words: int = field(20, "drop items whose title has more whitespace-separated words", ge=1)
    max_history: int = field(MAX_HISTORY, "history window of each sample", ge=1)
    item_order: Literal["asin", "first_seen", "shuffle"] = field(
        "asin", "item id order: sorted ASIN, first interaction in time, or a seeded shuffle"
    )
    seed: int = field(0, "seed of item_order=shuffle", ge=0)


# --------------------------------------------------------------------------- reading


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                try:
                    rec = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise DataFormatError(f"{path}:{lineno}: neither JSON nor a Python-literal dict") from None
            if not isinstance(rec, dict):
                raise DataFormatError(f"{path}:{lineno}: expected an object, got {type(rec).__name__}")
            yield lineno, rec


def clean_title(raw: Any, max_words: int = 20) -> str | None:
    """The cleaned title, or ``None`` when the item is dropped (§1.1 item filter)."""
    if not isinstance(raw, str) or "<span id" in raw or len(raw.strip()) <= 1 or len(raw.split()) > max_words:
        return None
    title = raw.replace("&quot;", '"').replace("&amp;", "&")
    title = re.sub(r"\s+", " ", html.unescape(title)).strip().strip('"').strip()
    return title or None


def _description(raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        return []
    return [str(p) for p in raw if str(p).strip()]


# --------------------------------------------------------------------------- shared steps


def sliding_window_samples(
    sequences: dict[str, list[tuple[int, int]]], max_history: int = MAX_HISTORY
) -> list[SeqExample]:
    """Per user ``[(item, time), ...]`` (already time-sorted) -> one sample per position ``i >= 1``
    with history ``items[max(0, i - max_history):i]``. Users in the order given."""
    out = []
    for user, seq in sequences.items():
        items = [i for i, _ in seq]
        times = [t for _, t in seq]
        for i in range(1, len(seq)):
            lo = max(0, i - max_history)
            out.append(SeqExample(user, tuple(items[lo:i]), items[i], times[i], tuple(times[lo:i])))
    return out


def chronological_split(
    samples: Sequence[SeqExample], ratios: tuple[float, float] = (0.8, 0.9)
) -> tuple[list[SeqExample], list[SeqExample], list[SeqExample]]:
    """Global time split: samples sorted stably by target time, cut at ``int(0.8 N)``, ``int(0.9 N)``."""
    order = sorted(samples, key=lambda e: e.timestamp if e.timestamp is not None else 0)
    n = len(order)
    a, b = int(ratios[0] * n), int(ratios[1] * n)
    return order[:a], order[a:b], order[b:]


def write_category(
    out_dir: str | Path, catalog: ItemCatalog, splits: dict[str, Sequence[SeqExample]]
) -> Path:
    """Write a catalog and its splits in the release layout (``<name>.<split>.csv`` etc.)."""
    out_dir = Path(out_dir)
    catalog.write(out_dir, catalog.name)
    for split, rows in splits.items():
        write_examples(out_dir / f"{catalog.name}.{split}.csv", rows, catalog)
    return out_dir


def _day(text: str | dt.date) -> int:
    return int(dt.datetime.strptime(str(text), "%Y-%m-%d").replace(tzinfo=dt.timezone.utc).timestamp())


def _k_core(reviews: list[tuple[str, str, int]], k: int) -> list[tuple[str, str, int]]:
    while True:
        users = Counter(u for u, _, _ in reviews)
        items = Counter(a for _, a, _ in reviews)
        kept = [r for r in reviews if users[r[0]] >= k and items[r[1]] >= k]
        if len(kept) == len(reviews):
            return kept
        reviews = kept


# --------------------------------------------------------------------------- the pipeline


def preprocess_amazon(
    reviews_path: str | Path, meta_path: str | Path, out_dir: str | Path, cfg: PreprocessConfig = PreprocessConfig()
) -> dict[str, Any]:
    """Run §1.1 end to end and write the category folder; returns the report (also written)."""
    reviews_path, meta_path, out_dir = Path(reviews_path), Path(meta_path), Path(out_dir)
    meta: dict[str, dict[str, Any]] = {}
    n_meta = 0
    for _, rec in _records(meta_path):
        n_meta += 1
        asin = rec.get("asin")
        title = clean_title(rec.get("title"), cfg.max_title_words)
        if asin and title and asin not in meta:
            meta[asin] = {"title": title, "description": _description(rec.get("description")), "brand": str(rec.get("brand") or "")}
    all_reviews = []
    for lineno, rec in _records(reviews_path):
        try:
            all_reviews.append((str(rec["reviewerID"]), str(rec["asin"]), int(rec["unixReviewTime"])))
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(f"{reviews_path}:{lineno}: needs reviewerID, asin and an integer unixReviewTime") from None
    titled = [r for r in all_reviews if r[1] in meta]
    end = _day(cfg.end)
    start_day = dt.datetime.strptime(str(cfg.start), "%Y-%m-%d")
    year = start_day.year
    while True:
        start = _day(start_day.replace(year=year).strftime("%Y-%m-%d"))
        core = _k_core([r for r in titled if start <= r[2] <= end], cfg.k_core)
        n_items = len({a for _, a, _ in core})
        if n_items >= cfg.min_items or year <= cfg.earliest_year:
            break
        log.info("window from %d keeps %d items (< %d): moving the start back a year", year, n_items, cfg.min_items)
        year -= 1
    if not core:
        raise ValueError(f"no interactions survive the {cfg.k_core}-core in the window {year}..{cfg.end}")

    asins = sorted({a for _, a, _ in core})
    if cfg.item_order == "first_seen":
        first: dict[str, tuple[int, int]] = {}
        for n, (_, a, t) in enumerate(core):
            first[a] = min(first.get(a, (t, n)), (t, n))
        asins.sort(key=lambda a: first[a])
    elif cfg.item_order == "shuffle":
        asins = [asins[i] for i in np.random.default_rng(cfg.seed).permutation(len(asins))]
    item_id = {a: i for i, a in enumerate(asins)}
    users = sorted({u for u, _, _ in core})
    user_id = {u: f"A{i}" for i, u in enumerate(users)}
    seqs: dict[str, list[tuple[int, int]]] = {user_id[u]: [] for u in users}
    for u, a, t in core:  # file order, then a stable time sort per user: ties keep file order
        seqs[user_id[u]].append((item_id[a], t))
    for s in seqs.values():
        s.sort(key=lambda x: x[1])
    samples = sliding_window_samples(seqs, cfg.max_history)
    train, valid, test = chronological_split(samples)

    catalog = ItemCatalog(
        titles=tuple(meta[a]["title"] for a in asins),
        descriptions=tuple(" ".join(meta[a]["description"]) for a in asins),
        name=cfg.name,
        brands=tuple(meta[a]["brand"] for a in asins),
    )
    write_category(out_dir, catalog, {"train": train, "valid": valid, "test": test})
    report = {
        "name": cfg.name,
        "window": [f"{year}{str(cfg.start)[4:]}", str(cfg.end)],
        "metadata_records": n_meta,
        "items_with_valid_title": len(meta),
        "reviews": len(all_reviews),
        "reviews_of_titled_items": len(titled),
        "interactions_after_k_core": len(core),
        "users": len(users),
        "items": len(asins),
        "samples": len(samples),
        "train": len(train),
        "valid": len(valid),
        "test": len(test),
        "config": {k: str(v) if isinstance(v, dt.date) else v for k, v in vars(cfg).items()},
    }
    (out_dir / f"{cfg.name}.preprocess.json").write_text(json.dumps(report, indent=2))
    log.info("preprocessed %s: %d users, %d items, %d/%d/%d samples", cfg.name, len(users), len(asins), len(train), len(valid), len(test))
    return report
