"""A synthetic sequential dataset with a known next-item rule, written in the release format.

Items belong to topics and carry generated titles and descriptions. Each user starts at a random
item and then follows a fixed successor map (a random permutation cycle) with probability
``1 - noise``, or jumps to a uniformly random item. The best achievable HR@1 is therefore
about ``1 - noise + noise / N``, while popularity stays near ``1 / N``: a model that learns
sequences beats popularity by a wide, known margin.

The generator writes the same files as a real category (``info.txt``, ``item.json``,
``index.json``, ``train/valid/test.csv`` through the same sliding-window and global time split as
:mod:`rl4rec.genrec.data.preprocess`), so every loader path is exercised:

    path = write_synthetic_dataset(tmp_dir)
    ds = load_dataset(path)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl4rec.config import field
from rl4rec.genrec.data.catalog import ItemCatalog
from rl4rec.genrec.data.preprocess import chronological_split, sliding_window_samples, write_category
from rl4rec.genrec.sid.codec import SIDCodec

__all__ = ["SyntheticConfig", "make_synthetic", "write_synthetic_dataset", "successor_map"]

_TOPICS = [
    ("drill", "power tools", "drills through wood, metal and masonry"),
    ("filament", "3D printing", "prints smooth layers at high speed"),
    ("glove", "safety gear", "protects hands from cuts and chemicals"),
    ("sensor", "electronics", "measures temperature and humidity precisely"),
    ("tape", "adhesives", "bonds firmly to most surfaces"),
    ("valve", "plumbing", "controls the flow of water and gas"),
    ("lamp", "lighting", "gives bright, even light for workshops"),
    ("scale", "lab equipment", "weighs samples to a tenth of a gram"),
]
_ADJECTIVES = ["Heavy Duty", "Compact", "Professional", "Cordless", "Industrial", "Premium", "Portable", "Classic"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of ``rl4rec genrec synth`` and of the test/quickstart datasets."""

    name: str = field("Synthetic", "category name of the written files")
    num_items: int = field(50, "catalog size", ge=2)
    num_users: int = field(400, "users (one sequence each)", ge=1)
    min_len: int = field(4, "shortest user sequence", ge=2)
    max_len: int = field(12, "longest user sequence", ge=2)
    noise: float = field(0.1, "probability of a uniformly random next item instead of the successor", ge=0.0, le=1.0)
    num_topics: int = field(5, "item topics (used in titles and as the first SID level)", ge=1, le=len(_TOPICS))
    days: int = field(365, "users start on a random day in this range; each step takes 0..3 days", ge=1)
    seed: int = field(0, "generator seed", ge=0)


def successor_map(num_items: int, seed: int) -> np.ndarray:
    """The deterministic next item of each item: one random cycle through all items."""
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(num_items)
    nxt = np.empty(num_items, dtype=np.int64)
    nxt[order] = np.roll(order, -1)
    return nxt


def make_synthetic(cfg: SyntheticConfig = SyntheticConfig()) -> tuple[ItemCatalog, dict[str, list[tuple[int, int]]]]:
    """(catalog, per-user ``[(item, unix_time), ...]``), deterministic in ``cfg.seed``."""
    if cfg.max_len < cfg.min_len:
        raise ValueError(f"max_len ({cfg.max_len}) must be >= min_len ({cfg.min_len})")
    rng = np.random.default_rng([cfg.seed, 2])
    titles, descriptions, codes = [], [], []
    for i in range(cfg.num_items):
        topic = i % cfg.num_topics
        noun, category, blurb = _TOPICS[topic]
        adjective = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
        titles.append(f"{adjective} {noun.title()} {chr(65 + topic)}-{100 + i}")
        descriptions.append(f"A {adjective.lower()} {noun} for {category}. It {blurb}. Model {100 + i}.")
        j = i // cfg.num_topics  # the item's rank within its topic
        codes.append((topic, j // 16, j % 16))
    catalog = ItemCatalog(tuple(titles), tuple(descriptions), SIDCodec(np.asarray(codes)), cfg.name)
    nxt = successor_map(cfg.num_items, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 3])
    t0 = 1_500_000_000 - 1_500_000_000 % 86400
    sequences: dict[str, list[tuple[int, int]]] = {}
    for u in range(cfg.num_users):
        length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        item = int(rng.integers(cfg.num_items))
        day = int(rng.integers(cfg.days))
        seq = [(item, t0 + 86400 * day)]
        for _ in range(length - 1):
            item = int(rng.integers(cfg.num_items)) if rng.random() < cfg.noise else int(nxt[item])
            day += int(rng.integers(4))
            seq.append((item, t0 + 86400 * day))
        sequences[f"A{u}"] = seq
    return catalog, sequences


def write_synthetic_dataset(out_dir: str | Path, cfg: SyntheticConfig = SyntheticConfig()) -> Path:
    """Generate and write ``<out_dir>/<name>/`` with train/valid/test CSVs; returns that folder."""
    catalog, sequences = make_synthetic(cfg)
    train, valid, test = chronological_split(sliding_window_samples(sequences))
    folder = Path(out_dir) / cfg.name
    write_category(folder, catalog, {"train": train, "valid": valid, "test": test})
    return folder
