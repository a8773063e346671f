"""Retrieval service for free-text recommendations (spec genrec.md §10).

A generated text is embedded and ranked against every catalog item by cosine similarity; the
target's rank drives the ``ndcg`` / ``hit`` / ``mrr`` / ``mixed`` rewards. The service batches
queries. It runs in-process (``backend="local"``) or as a named Ray actor that several trainer
processes share (``backend="ray"``); a missing or dead actor is retried and then raises a clear
error — a retrieval failure never turns into a silent zero reward.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from rl4rec.config import field
from rl4rec.metrics.ranking import ranks_from_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalConfig:
    """Where and how generated texts are grounded to catalog items."""

    backend: Literal["local", "ray"] = field("local", "in-process index, or a shared Ray actor")
    encoder: str = field("minilm", "text encoder: minilm | hash[:dim] | a local model path")
    actor_name: str = field("rl4rec-retrieval", "name of the shared Ray actor")
    ray_address: str = field("", "Ray cluster address ('' = the running or a new local instance)")
    batch_size: int = field(256, "queries per similarity batch", ge=1)
    retries: int = field(3, "attempts to reach the Ray actor before failing", ge=1)
    exclude_history: bool = field(False, "drop history items from the ranking (default: kept, as in evaluation)")


class RetrievalIndex:
    """Cosine-similarity ranking of queries against an item-embedding matrix (N, d)."""

    def __init__(self, item_embeddings: np.ndarray | torch.Tensor, encoder=None, batch_size: int = 256):
        emb = torch.as_tensor(np.asarray(item_embeddings), dtype=torch.float32)
        if emb.ndim != 2 or not torch.isfinite(emb).all():
            raise ValueError(f"item embeddings must be a finite (N, d) matrix, got shape {tuple(emb.shape)}")
        self.items = torch.nn.functional.normalize(emb, dim=-1)
        self.encoder, self.batch_size = encoder, batch_size

    @property
    def num_items(self) -> int:
        return self.items.shape[0]

    def scores(self, queries: torch.Tensor) -> torch.Tensor:
        """(M, d) query embeddings -> (M, N) cosine similarities."""
        q = torch.nn.functional.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=-1)
        return q @ self.items.T

    def target_ranks(
        self, queries: torch.Tensor, targets: Sequence[int], histories: Sequence[Sequence[int]] | None = None
    ) -> torch.Tensor:
        """0-based rank of each target among all items (ties broken by item id), batched."""
        targets = torch.as_tensor(targets, dtype=torch.long)
        out = []
        for start in range(0, len(targets), self.batch_size):
            s = self.scores(queries[start : start + self.batch_size])
            if histories is not None:  # exclude the user's history items (never the target itself)
                for row, hist in enumerate(histories[start : start + self.batch_size]):
                    drop = [h for h in hist if h != int(targets[start + row])]
                    if drop:
                        s[row, drop] = -float("inf")
            out.append(ranks_from_scores(s, targets[start : start + self.batch_size]))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError("this index has no text encoder; pass query embeddings to target_ranks")
        return torch.from_numpy(np.asarray(self.encoder.encode(list(texts)), dtype=np.float32))

    def rank_texts(self, texts: Sequence[str], targets: Sequence[int], histories=None) -> torch.Tensor:
        return self.target_ranks(self._encode(texts), targets, histories)

    def ground(self, texts: Sequence[str], targets: Sequence[int], histories=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(target ranks, closest item) of each text, from one encoding pass (a rollout's hot path)."""
        queries = self._encode(texts)
        top = torch.cat([self.scores(queries[i : i + self.batch_size]).argmax(-1) for i in range(0, len(texts), self.batch_size)])
        return self.target_ranks(queries, targets, histories), top


class RayRetrieval:
    """Client of a named Ray actor holding one :class:`RetrievalIndex` for every trainer process."""

    def __init__(self, cfg: RetrievalConfig, item_embeddings=None, encoder_factory=None):
        try:
            import ray
        except ModuleNotFoundError as err:
            raise RuntimeError("retrieval.backend=ray needs Ray: pip install 'rl4rec[ray]'") from err
        self.ray, self.cfg = ray, cfg
        if not ray.is_initialized():
            ray.init(address=cfg.ray_address or None, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        try:
            self.actor = ray.get_actor(cfg.actor_name)
        except ValueError:
            if item_embeddings is None:
                raise RuntimeError(
                    f"no retrieval actor named {cfg.actor_name!r} is running and no item embeddings were given to start one"
                ) from None
            self.actor = ray.remote(num_cpus=0)(_IndexActor).options(name=cfg.actor_name, get_if_exists=True).remote(
                np.asarray(item_embeddings, dtype=np.float32), encoder_factory, cfg.batch_size
            )

    def _call(self, method: str, *args):
        last = None
        for attempt in range(self.cfg.retries):
            try:
                return self.ray.get(getattr(self.actor, method).remote(*args))
            except (self.ray.exceptions.RayActorError, ValueError) as err:
                last = err
                log.warning("retrieval actor %s unavailable (%s); retry %d/%d", self.cfg.actor_name, err, attempt + 1, self.cfg.retries)
                time.sleep(0.5 * (attempt + 1))
                with contextlib.suppress(ValueError):  # not back yet: the next attempt tries again
                    self.actor = self.ray.get_actor(self.cfg.actor_name)
        raise RuntimeError(f"retrieval service {self.cfg.actor_name!r} is dead or unreachable after {self.cfg.retries} attempts: {last}")

    def target_ranks(self, queries, targets, histories=None) -> torch.Tensor:
        return self._call("target_ranks", torch.as_tensor(queries), list(map(int, targets)), histories)

    def rank_texts(self, texts, targets, histories=None) -> torch.Tensor:
        return self._call("rank_texts", list(texts), list(map(int, targets)), histories)

    def ground(self, texts, targets, histories=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._call("ground", list(texts), list(map(int, targets)), histories)

    @property
    def num_items(self) -> int:
        return int(self._call("num_items"))


class _IndexActor(RetrievalIndex):
    """The Ray actor: one index (and encoder) in one process, queried by many trainers. The encoder
    is built in the actor's process; ``num_items`` is a method, as Ray actors expose no properties."""

    def __init__(self, item_embeddings: np.ndarray, encoder_factory, batch_size: int):
        super().__init__(item_embeddings, encoder_factory() if encoder_factory is not None else None, batch_size)

    def num_items(self) -> int:
        return self.items.shape[0]


def make_retrieval(cfg: RetrievalConfig, item_embeddings, encoder_factory=None):
    """The configured service: a local :class:`RetrievalIndex` or a :class:`RayRetrieval` client."""
    if cfg.backend == "local":
        return RetrievalIndex(item_embeddings, encoder_factory() if encoder_factory else None, cfg.batch_size)
    return RayRetrieval(cfg, item_embeddings, encoder_factory)
