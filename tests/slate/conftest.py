"""Shared by the slate simulator tests (plain functions, imported by the test modules): released catalogues and tiny scripted worlds."""

from __future__ import annotations

from pathlib import Path

import torch

from rl4rec.slate.env.config import TopicRecConfig, variant_config
from rl4rec.slate.env.simulator import TopicRecSimulator


def released(shared_data: Path, variant: str, **overrides) -> TopicRecSimulator:
    """Simulator of a paper variant on the released catalogue under ``shared_data/slate``."""
    catalogue = "focused" if variant.startswith("focused") else "diffuse"
    path = shared_data / "slate" / f"item_embeddings_{catalogue}.npy"
    return TopicRecSimulator(variant_config(variant, catalogue=str(path), **overrides))


def tiny(embeddings: list[list[float]], num_topics: int = 2, topic_size: int = 2, rec_size: int = 2, **overrides) -> TopicRecSimulator:
    """A small hand-made world. Pass ``rel_threshold`` and ``exam_gamma=1.0`` to make clicks
    deterministic (relevance 0/1, every slot examined)."""
    emb = torch.tensor(embeddings, dtype=torch.float32)
    cfg = TopicRecConfig(
        catalogue="(in memory)",
        num_items=emb.shape[0],
        num_topics=num_topics,
        topic_size=topic_size,
        rec_size=rec_size,
        **overrides,
    )
    return TopicRecSimulator(cfg, item_embeddings=emb)
