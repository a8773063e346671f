"""TopicRec item catalogues: load (validated), derive topics / max score / initial slate, generate.

Embeddings are ``(N, T * topic_size)`` float arrays laid out topic-major: columns
``topic_size*k ... topic_size*(k+1)-1`` belong to topic k (spec §1.2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rl4rec.errors import InputError

#: released catalogues (``data/slate/item_embeddings_<name>.npy``)
RELEASED = ("focused", "diffuse")


def data_dir_candidates() -> list[Path]:
    """Folders searched for the released ``slate`` data, first match wins: ``$RL4REC_SHARED_DATA/slate``,
    then ``data/slate`` and ``../shared/data/slate`` relative to the working directory."""
    out = []
    if os.environ.get("RL4REC_SHARED_DATA"):
        out.append(Path(os.environ["RL4REC_SHARED_DATA"]) / "slate")
    out += [Path.cwd() / "data" / "slate", Path.cwd().parent / "shared" / "data" / "slate"]
    return out


def resolve_catalogue(catalogue: str) -> Path:
    """``'focused'`` / ``'diffuse'`` -> the released file; anything else is taken as a path."""
    if catalogue in RELEASED:
        name = f"item_embeddings_{catalogue}.npy"
        for folder in data_dir_candidates():
            if (folder / name).is_file():
                return folder / name
        searched = ", ".join(str(p) for p in data_dir_candidates())
        raise FileNotFoundError(
            f"released catalogue {name} not found; searched {searched}. "
            "Set RL4REC_SHARED_DATA to the folder holding slate/, or pass a .npy path."
        )
    path = Path(catalogue).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"item embeddings {path} do not exist (give 'focused', 'diffuse' or a .npy file path)"
        )
    return path


def check_embeddings(emb: np.ndarray | torch.Tensor, num_topics: int, topic_size: int, source: str = "embeddings") -> torch.Tensor:
    """Validate shape ``(N, T*topic_size)``, a real dtype and finite values; return float32 tensor."""
    arr = emb.detach().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{source}: dtype {arr.dtype} is not a real number type")
    dim = num_topics * topic_size
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InputError(
            f"{source}: shape {arr.shape} is not (num_items, {dim}) = (N, num_topics {num_topics} x topic_size {topic_size})"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{source}: the catalogue is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise InputError(
            f"{source}: {int(bad.sum())} non-finite values (NaN/inf) in {len(rows)} rows, first row {int(rows[0])}"
        )
    out = torch.as_tensor(arr.astype(np.float32, copy=True))
    if float(out.norm(dim=1).max()) <= 0.0:
        raise InputError(f"{source}: every item embedding is zero; scores cannot be normalised")
    return out


def load_embeddings(path: str | Path, num_topics: int = 10, topic_size: int = 2) -> torch.Tensor:
    """Load a ``.npy`` catalogue (no pickles) and validate it; see :func:`check_embeddings`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"item embeddings {path} do not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, EOFError, SyntaxError... on a bad header
        raise InputError(f"{path}: not a plain numeric .npy array ({type(err).__name__}: {str(err)[:200]})") from err
    return check_embeddings(arr, num_topics, topic_size, source=str(path))


def topic_norms(emb: torch.Tensor, num_topics: int, topic_size: int) -> torch.Tensor:
    """``(N, T)`` L2 norm of each item's topic sub-vectors."""
    return emb.view(emb.shape[0], num_topics, topic_size).norm(dim=-1)


def main_topics(emb: torch.Tensor, num_topics: int, topic_size: int) -> torch.Tensor:
    """Main topic of each item: argmax over topics of the sub-vector norm (spec §1.2)."""
    return topic_norms(emb, num_topics, topic_size).argmax(dim=1)


def max_score(emb: torch.Tensor) -> float:
    """Largest item L2 norm; scores are divided by it (1.0000001 for the released files)."""
    return float(emb.norm(dim=1).max())


def initial_slate(emb: torch.Tensor, num_topics: int, topic_size: int, rec_size: int) -> torch.Tensor:
    """The slate shown at reset: per topic, the item with the largest topic sub-vector norm.

    With fewer topics than slots the official code takes the top ``rec_size // num_topics`` items
    of each topic; that only fills the slate when the division is exact, so we require it.
    """
    quality = topic_norms(emb, num_topics, topic_size)
    if num_topics >= rec_size:
        return quality.argmax(dim=0)[:rec_size].clone()
    if rec_size % num_topics:
        raise InputError(f"rec_size {rec_size} must be a multiple of num_topics {num_topics} when num_topics < rec_size")
    per = rec_size // num_topics
    return quality.topk(per, dim=0).indices.T.reshape(-1).clone()


def generate_embeddings(
    num_items: int = 1000,
    num_topics: int = 10,
    topic_size: int = 2,
    *,
    peak_power: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Draw a new catalogue with the paper's recipe (spec §1.2).

    ``peak_power``: None = no peaking (the distribution of both released files), 1.5 = official
    code ("for focused"), 2 = the paper's "square". Rows are L2-normalised.
    """
    if peak_power is not None and peak_power <= 0:
        raise InputError(f"peak_power must be positive or None, got {peak_power}")
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(num_items, num_topics, generator=gen)
    weights = weights / weights.sum(dim=1, keepdim=True)  # an item cannot be good in every topic
    z = (0.4 * torch.randn(num_items, num_topics, topic_size, generator=gen)).clamp(-1, 1).abs()
    emb = (weights.unsqueeze(2) * z).flatten(1)
    if peak_power is not None:
        emb = emb.pow(peak_power)
    return emb / emb.norm(dim=1, keepdim=True)
