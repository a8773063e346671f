"""GeMS pretraining on logged (slate, clicks) pairs (spec slate_rl.md §3.3), for S seeds at once.

First 10% of sessions (file order) = validation, the rest = training; every turn is one example.
Batch 256, Adam 1e-3; the official loader does not shuffle (faithful); ``shuffle=true`` fixes it.
The parameters with the lowest validation loss (decoded from mu, no sampling) are kept per seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from rl4rec.config import field
from rl4rec.progress import track
from rl4rec.slate.nets import descend, select_members
from rl4rec.slate.rankers.gems import GeMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """GeMS pretraining budget (paper: 100K sessions, 10 epochs; the official config says 15)."""

    sessions: int = field(100_000, "logged sessions to generate / use", ge=10)
    epochs: int = field(10, "passes over the training sessions", ge=1)
    batch_size: int = field(256, "(slate, clicks) pairs per batch", ge=1)
    lr: float = field(1e-3, "Adam learning rate", gt=0.0)
    val_fraction: float = field(0.1, "first fraction of sessions used for validation", gt=0.0, lt=1.0)
    shuffle: bool = field(False, "fixed: shuffle training pairs each epoch (official: file order)")
    bounds_sessions: int = field(1000, "sessions whose encodings define the RL action box", ge=1)
    logs_seed: int = field(2754851, "seed of the logging policy (official config value)")


def _pairs(slates: torch.Tensor, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = slates.shape[-1]
    return slates.reshape(-1, k).long(), clicks.reshape(-1, k).float()


@torch.no_grad()
def validation_loss(gems: GeMS, slates: torch.Tensor, clicks: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """Mean per-member validation loss (decoding from mu)."""
    s = len(gems.encoder.layers[0].weight)
    total, n = torch.zeros(s, device=slates.device), 0
    for i in range(0, slates.shape[0], batch):
        sl, cl = slates[i : i + batch], clicks[i : i + batch]
        terms = gems.loss(sl.expand(s, -1, -1), cl.expand(s, -1, -1), sample=False)
        total += terms["loss"] * sl.shape[0]
        n += sl.shape[0]
    return total / max(n, 1)


def pretrain_gems(
    gems: GeMS,
    slates: torch.Tensor,
    clicks: torch.Tensor,
    cfg: PretrainConfig,
    *,
    seed: int,
    log_fn=None,
    progress: bool = True,
    check_stop=None,
) -> dict[str, list[float]]:
    """Train ``gems`` in place on logged sessions (n, T, K); returns per-epoch losses per member.

    Computes where ``gems`` lives (the sessions are moved there once). ``check_stop`` is called
    between batches and may raise (e.g. :meth:`Run.check_stop`).
    """
    device = gems.items.weight.device
    slates, clicks = slates.to(device), clicks.to(device)
    n = slates.shape[0]
    n_val = max(1, int(round(n * cfg.val_fraction)))
    val_s, val_c = _pairs(slates[:n_val], clicks[:n_val])
    tr_s, tr_c = _pairs(slates[n_val:], clicks[n_val:])
    s = gems.items.weight.shape[0]
    opt = torch.optim.Adam(gems.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    best = validation_loss(gems, val_s, val_c)
    best_state = {k: v.clone() for k, v in gems.state_dict().items()}
    history: dict[str, list[float]] = {"train": [], "val": [float(best.mean())]}
    step = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(tr_s.shape[0], generator=gen, device=device) if cfg.shuffle else torch.arange(tr_s.shape[0], device=device)
        running = torch.zeros(s, device=device)
        batches = range(0, tr_s.shape[0], cfg.batch_size)
        for i in track(batches, desc=f"GeMS epoch {epoch + 1}/{cfg.epochs}", enabled=progress, unit="batch"):
            if check_stop is not None:
                check_stop()  # a run stopped during pretraining leaves at once (it restarts pretraining on resume)
            idx = order[i : i + cfg.batch_size]
            terms = gems.loss(tr_s[idx].expand(s, -1, -1), tr_c[idx].expand(s, -1, -1), generator=gen)
            descend(opt, terms["loss"])
            running += terms["loss"].detach()
            step += 1
        train_loss = running / max(len(batches), 1)
        val = validation_loss(gems, val_s, val_c)
        improved = val < best
        if bool(improved.any()):  # keep each member's own best parameters
            best_state = select_members(improved, gems.state_dict(), best_state)
            best = torch.minimum(best, val)
        history["train"].append(float(train_loss.mean()))
        history["val"].append(float(val.mean()))
        log.info("GeMS epoch %d: train %.4f val %.4f", epoch + 1, train_loss.mean(), val.mean())
        if log_fn is not None:
            log_fn({"train/gems_loss": float(train_loss.mean()), "eval/gems_val_loss": float(val.mean())}, epoch + 1)
    gems.load_state_dict(best_state)
    return history


def pretrain_on_logs(gems: GeMS, logs, cfg: PretrainConfig, *, seed: int, log_fn=None, progress: bool = True, check_stop=None):
    """:func:`pretrain_gems` on a :class:`~rl4rec.slate.logs.LoggedData`, then the RL action box from
    the encodings of its first ``cfg.bounds_sessions`` sessions; returns ``(history, center, scale)``."""
    device = gems.items.weight.device
    slates = torch.from_numpy(np.asarray(logs.slates).astype(np.int64)).to(device)
    clicks = torch.from_numpy(np.asarray(logs.clicks).astype(np.float32)).to(device)
    history = pretrain_gems(gems, slates, clicks, cfg, seed=seed, log_fn=log_fn, progress=progress, check_stop=check_stop)
    m = min(cfg.bounds_sessions, slates.shape[0])
    k, s = slates.shape[-1], gems.items.weight.shape[0]
    first_m = (slates[:m].reshape(1, -1, k).expand(s, -1, -1), clicks[:m].reshape(1, -1, k).expand(s, -1, -1))
    return history, *gems.action_bounds(*first_m)
