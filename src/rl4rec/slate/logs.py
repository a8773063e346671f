"""Logged sessions for GeMS pretraining and MF (spec §2): generation, storage, loading.

A dataset is a folder with ``slates.npy`` (n, H, K) int16 — the slates actually shown, after
oracle fill —, ``clicks.npy`` (n, H, K) uint8 and ``meta.json``, the sidecar holding the generating
config, seed, variant and counts. Each file is written atomically and the sidecar last, so an
interrupted run never leaves a dataset that loads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl4rec.errors import InputError
from rl4rec.slate.env.config import TopicRecConfig

log = logging.getLogger(__name__)

FORMAT = "rl4rec.slate.logs/1"
SLATES, CLICKS, META = "slates.npy", "clicks.npy", "meta.json"
LOGGING_SEED = 2754851  # official generate_datasets.yml
LOGGING_EPSILON = 0.5


@dataclass(frozen=True)
class LoggedData:
    """Validated logged sessions; arrays are memory-mapped when loaded with ``mmap=True``."""

    slates: np.ndarray  # (n, H, K) int16 item ids
    clicks: np.ndarray  # (n, H, K) uint8 0/1
    meta: dict[str, Any]
    path: Path

    @property
    def num_sessions(self) -> int:
        return int(self.slates.shape[0])

    def config(self) -> TopicRecConfig:
        """The simulator config that generated the data."""
        return TopicRecConfig(**self.meta["config"])


def default_dir(env: str, mode: str = "faithful") -> Path:
    return Path("data_cache") / "slate_logs" / (env if mode == "faithful" else f"{env}-{mode}")


def generate_logs(
    config: TopicRecConfig,
    sessions: int,
    out_dir: str | Path,
    *,
    seed: int = LOGGING_SEED,
    epsilon: float = LOGGING_EPSILON,
    batch_size: int = 4096,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> LoggedData:
    """Run ``sessions`` full episodes of the epsilon-greedy oracle and store them in ``out_dir``.

    Session i is user i of the simulator's ``logs`` population (in faithful mode the same stream
    as the test users, §1.12). ``seed`` drives the logging policy only.
    """
    import torch

    from rl4rec.progress import track
    from rl4rec.slate.env.simulator import TopicRecSimulator
    from rl4rec.slate.policies import EpsGreedyOracle

    if sessions < 1 or batch_size < 1:
        raise InputError(f"sessions and batch_size must be positive, got {sessions}, {batch_size}")
    out_dir = Path(out_dir)
    if (out_dir / META).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a dataset; pass overwrite=True (--overwrite) to replace it")
    sim = TopicRecSimulator(config, device=device)
    if sim.num_items > np.iinfo(np.int16).max:
        raise InputError(f"{sim.num_items} items do not fit the int16 slate format")
    policy = EpsGreedyOracle(sim.num_items, sim.rec_size, epsilon=epsilon, seed=seed, device=device)
    horizon, k = sim.episode_length, sim.rec_size
    slates = np.empty((sessions, horizon, k), dtype=np.int16)
    clicks = np.empty((sessions, horizon, k), dtype=np.uint8)
    start = time.perf_counter()
    batches = range(0, sessions, batch_size)
    with torch.no_grad():
        for first in track(batches, desc=f"logs {config.variant} ({batch_size} sessions/batch)", enabled=progress, unit="batch"):
            n = min(batch_size, sessions - first)
            obs, info = sim.reset(n, user_offset=first, population="logs")
            shown = torch.empty(n, horizon, k, dtype=torch.int16, device=device)
            clicked = torch.empty(n, horizon, k, dtype=torch.uint8, device=device)
            for t in range(horizon):  # the reset observation is not stored (§2)
                obs, _, _, info = sim.step(policy.act(obs, info))
                shown[:, t], clicked[:, t] = obs["slate"], obs["clicks"]
            slates[first : first + n] = shown.cpu().numpy()
            clicks[first : first + n] = clicked.cpu().numpy()
    seconds = time.perf_counter() - start
    meta = {
        "format": FORMAT,
        "env": config.variant,
        "mode": config.mode,
        "config": config.describe(),
        "sessions": sessions,
        "episode_length": horizon,
        "rec_size": k,
        "num_items": sim.num_items,
        "population": "logs",
        "user_stream": sim.stream["stream"],
        "sim_seed": config.sim_seed,
        "policy": {"name": "eps_oracle", "epsilon": epsilon, "per_slot": True, "seed": seed, "batch_size": batch_size},
        "stats": _stats(slates, clicks),
        "generation_seconds": round(seconds, 2),
    }
    meta["config"].pop("resolved")  # kept separately below so the config round-trips
    meta["resolved"] = config.describe()["resolved"]
    _write(out_dir, slates, clicks, meta)
    log.info("wrote %d sessions to %s in %.1fs", sessions, out_dir, seconds)
    return LoggedData(slates, clicks, meta, out_dir)


def cached_logs(out_dir: Path, config: TopicRecConfig, sessions: int, *, seed: int, progress: bool = True) -> LoggedData:
    """The dataset already in ``out_dir`` (a resumed run), else ``sessions`` new ones generated there."""
    if (out_dir / META).exists():
        return load_logs(out_dir, env=config.variant)
    return generate_logs(config, sessions, out_dir, seed=seed, progress=progress, overwrite=True)


def _stats(slates: np.ndarray, clicks: np.ndarray) -> dict[str, Any]:
    returns = clicks.sum(axis=(1, 2), dtype=np.int64)
    ordered = np.sort(slates[:1000].reshape(-1, slates.shape[2]), axis=1)
    return {
        "total_clicks": int(returns.sum()),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
        "clicks_per_turn": float(returns.mean() / slates.shape[1]),
        "click_rate_by_slot": [round(float(x), 4) for x in clicks.mean(axis=(0, 1))],
        "repeated_item_slates_first_1000_sessions": float((ordered[:, 1:] == ordered[:, :-1]).any(1).mean()),
    }


def _write(out_dir: Path, slates: np.ndarray, clicks: np.ndarray, meta: dict) -> None:
    from rl4rec.runs import atomic_save_npy, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META).unlink(missing_ok=True)  # the sidecar marks a complete dataset: gone while the arrays change
    atomic_save_npy(out_dir / SLATES, slates)
    atomic_save_npy(out_dir / CLICKS, clicks)
    atomic_write_text(out_dir / META, json.dumps(meta, indent=2))


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, EOFError, SyntaxError... on a bad header
        raise InputError(f"{path}: not a readable .npy array ({type(err).__name__}: {str(err)[:200]})") from err


def load_logs(path: str | Path, *, env: str | None = None, mode: str | None = None, mmap: bool = False) -> LoggedData:
    """Load and validate a dataset folder; ``env``/``mode`` must match the sidecar when given."""
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} holds no logged dataset ({META} missing); generate one with `rl4rec slate generate-logs`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{meta_path} is not valid JSON ({err})") from err
    required = ("format", "env", "mode", "config", "sessions", "episode_length", "rec_size", "num_items", "stats")
    missing = [key for key in required if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise InputError(f"{meta_path} lacks {', '.join(missing)}: corrupted or not an rl4rec logs sidecar")
    if meta["format"] != FORMAT:
        raise InputError(f"{meta_path}: format {meta['format']!r}, expected {FORMAT!r}")
    for key, want in (("env", env), ("mode", mode)):
        if want is not None and meta[key] != want:
            raise InputError(f"{path} holds {key} {meta[key]!r} data, not the requested {want!r}")
    if not isinstance(meta["stats"], dict):
        raise InputError(f"{meta_path}: stats must be a mapping, got {type(meta['stats']).__name__}")
    slates, clicks = (_load_array(path / name, mmap) for name in (SLATES, CLICKS))
    shape = (meta["sessions"], meta["episode_length"], meta["rec_size"])
    for name, arr, dtype in ((SLATES, slates, np.int16), (CLICKS, clicks, np.uint8)):
        if arr.shape != shape or arr.dtype != dtype:
            raise InputError(f"{path / name}: {arr.dtype} {arr.shape}, the sidecar says {np.dtype(dtype)} {shape}")
    lo, hi = int(slates.min()), int(slates.max())
    if lo < 0 or hi >= meta["num_items"]:
        raise InputError(f"{path / SLATES}: item ids span [{lo}, {hi}], outside [0, {meta['num_items']})")
    if int(clicks.max()) > 1:
        raise InputError(f"{path / CLICKS}: clicks must be 0/1, found {int(clicks.max())}")
    total = int(clicks.sum(dtype=np.int64))
    if total != meta["stats"].get("total_clicks"):
        raise InputError(f"{path}: {total} clicks in {CLICKS}, the sidecar says {meta['stats'].get('total_clicks')}")
    return LoggedData(slates, clicks, meta, path)
