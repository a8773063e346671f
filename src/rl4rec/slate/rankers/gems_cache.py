"""Pretrained GeMS shared by runs (``slate train gems_cache=<folder>``).

The GeMS paper pretrains one GeMS per seed and environment and then trains many agents on it; a
Table 2 sweep does the same (the faithful and the fixed-alpha SAC+GeMS cells of a seed pretrain
the same model). A run with ``gems_cache`` set looks its GeMS up by a key over everything
pretraining reads: the simulator config and the bytes of its item embeddings, the GeMS and
pretraining settings, the seeds and the device type. A hit loads the weights and action box and
replays the pretraining metrics into the run's log, so the run is the run it would have been
(pretraining draws from its own generators, never the global RNG); a miss pretrains and adds the
model. Change the pretraining code and the key stays the same: empty the folder then.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what a cached file holds changes


def cache_inputs(sim, gems_cfg, pretrain_cfg, seeds: Sequence[int]) -> dict:
    """What the cached model depends on (JSON-ready)."""
    items = sim.item_embeddings.detach().cpu().contiguous().numpy()
    return {
        "format": FORMAT,
        "env": dataclasses.asdict(sim.config),
        "item_embeddings_sha1": hashlib.sha1(items.tobytes()).hexdigest(),
        "gems": dataclasses.asdict(gems_cfg),
        "pretrain": dataclasses.asdict(pretrain_cfg),
        "seeds": list(seeds),
        "device": sim.device.type,
    }


def cache_path(folder: str | Path, inputs: dict) -> Path:
    digest = hashlib.sha1(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"gems_{inputs['env']['variant']}_{digest}.pt"


def save_gems(path: Path, gems, center: torch.Tensor, scale: torch.Tensor, *, seeds: Sequence[int], env: str, **extra) -> None:
    """Write a pretrained GeMS (weights on the CPU, action box, seeds, env, ``extra``) atomically: the
    ``gems.pt`` of ``slate pretrain`` and a cache entry share this layout, so either is a ``gems_checkpoint``."""
    from rl4rec.runs import atomic_torch_save

    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in gems.state_dict().items()}
    atomic_torch_save({"gems": weights, "center": center.cpu(), "scale": scale.cpu(), "seeds": list(seeds), "env": env, **extra}, path)


def load_gems(path: Path, gems, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Load a file of :func:`save_gems` into ``gems`` (trained for ``seeds``); ``(center, scale, state)``
    on the device of ``gems``."""
    from rl4rec.runs import load_checkpoint

    state = load_checkpoint(path)
    if state["seeds"] != list(seeds):
        raise ValueError(f"GeMS checkpoint was trained for seeds {state['seeds']}, this run needs {list(seeds)}")
    gems.load_state_dict(state["gems"])
    dev = gems.items.weight.device
    return state["center"].to(dev), state["scale"].to(dev), state


def load_cached(path: Path, gems, seeds: Sequence[int], log_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Load ``path`` into ``gems`` and replay its pretraining metrics; ``(center, scale)``, or None if absent."""
    if not path.is_file():
        return None
    center, scale, state = load_gems(path, gems, seeds)
    history = state["history"]
    if log_fn is not None:  # the same records pretraining logs, so metrics.jsonl does not depend on the cache
        for epoch, (train, val) in enumerate(zip(history["train"], history["val"][1:], strict=True), start=1):
            log_fn({"train/gems_loss": train, "eval/gems_val_loss": val}, epoch)
    log.info("GeMS loaded from the cache %s (pretrained by an earlier run; best validation loss %.4f)", path, min(history["val"]))
    return center, scale


def save_cached(path: Path, gems, center: torch.Tensor, scale: torch.Tensor, history: dict, inputs: dict) -> None:
    save_gems(path, gems, center, scale, seeds=inputs["seeds"], env=inputs["env"]["variant"], history=history,
              inputs=json.dumps(inputs, default=str))
    log.info("GeMS added to the cache %s", path)
