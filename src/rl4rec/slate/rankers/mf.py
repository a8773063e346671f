"""BPR matrix factorisation on logged sessions, for the TopK (MF) baseline (spec slate_rl.md §4).

Each logged session is a user; positives are (session, clicked item) for every click (repeats
kept), one uniform negative per positive; loss ``-log(sigmoid(s_pos - s_neg) + 1e-7)``; dim 20,
Xavier-uniform tables, Adam lr 1e-4, batch 256, early stopping on a validation loss.
The official validation (first 10% of sessions) shares and trains user rows with training
sessions (spec §9 item 21). We use a corrected protocol instead: a seeded random 10% of the
positives is held out (their sessions' rows are fitted on the remaining clicks, never on the
held-out ones) and negatives come from a seeded generator. This only changes which table is
saved; the released factors remain available for faithful TopK (MF).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from rl4rec.config import field
from rl4rec.progress import track
from rl4rec.slate.nets import descend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MFConfig:
    """BPR-MF hyperparameters (official values)."""

    dim: int = field(20, "factor dimension", ge=1)
    lr: float = field(1e-4, "Adam learning rate", gt=0.0)
    batch_size: int = field(256, "positives per batch", ge=1)
    max_epochs: int = field(10, "upper bound on epochs", ge=1)
    eval_every: int = field(1000, "batches between validation checks", ge=1)
    patience: int = field(3, "stop after this many checks without improvement", ge=1)
    val_fraction: float = field(0.1, "fraction of positives held out for validation", gt=0.0, lt=1.0)


def _positives(clicks: np.ndarray, slates: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    sess, turn, slot = np.nonzero(clicks)
    return torch.from_numpy(sess.astype(np.int64)), torch.from_numpy(slates[sess, turn, slot].astype(np.int64))


def _bpr(users: torch.nn.Embedding, items: torch.nn.Embedding, u, pos, neg) -> torch.Tensor:
    eu = users(u)
    diff = (eu * items(pos)).sum(-1) - (eu * items(neg)).sum(-1)
    return -torch.log(torch.sigmoid(diff) + 1e-7).mean()


def train_mf(
    slates: np.ndarray, clicks: np.ndarray, num_items: int, cfg: MFConfig, *, seed: int, progress: bool = True, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, dict]:
    """Item factors (num_items, dim) with the lowest validation BPR loss, and a training summary.

    Every random draw is made on the CPU (the same splits, initial factors and negatives on every
    device); the factors and the loss live on ``device``.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = slates.shape[0]
    u_all, i_all = _positives(clicks, slates)
    val_mask = torch.rand(len(u_all), generator=gen) < cfg.val_fraction
    u_val, i_val = u_all[val_mask].to(device), i_all[val_mask].to(device)
    u_tr, i_tr = u_all[~val_mask].to(device), i_all[~val_mask].to(device)
    if len(u_tr) == 0 or len(u_val) == 0:
        raise ValueError("MF training needs clicks for both training and validation; generate more sessions")
    users = torch.nn.Embedding(n, cfg.dim)
    items = torch.nn.Embedding(num_items, cfg.dim)
    torch.nn.init.xavier_uniform_(users.weight)
    torch.nn.init.xavier_uniform_(items.weight)
    users, items = users.to(device), items.to(device)
    opt = torch.optim.Adam([*users.parameters(), *items.parameters()], lr=cfg.lr)
    val_neg = torch.randint(0, num_items, i_val.shape, generator=gen).to(device)

    def val_loss() -> float:
        with torch.no_grad():
            return float(_bpr(users, items, u_val, i_val, val_neg))

    best, best_table, bad, batches = val_loss(), items.weight.detach().clone(), 0, 0
    for epoch in range(cfg.max_epochs):
        order = torch.randperm(len(u_tr), generator=gen).to(device)
        for start in track(range(0, len(order), cfg.batch_size), desc=f"MF epoch {epoch + 1}", enabled=progress, unit="batch"):
            idx = order[start : start + cfg.batch_size]
            neg = torch.randint(0, num_items, idx.shape, generator=gen).to(device)
            descend(opt, _bpr(users, items, u_tr[idx], i_tr[idx], neg))
            batches += 1
            if batches % cfg.eval_every == 0:
                current = val_loss()
                if current < best:
                    best, best_table, bad = current, items.weight.detach().clone(), 0
                else:
                    bad += 1
                if bad >= cfg.patience:
                    log.info("MF: early stop after %d batches (best validation loss %.4f)", batches, best)
                    return best_table.cpu().numpy(), {"batches": batches, "best_val_loss": best, "epochs": epoch + 1}
        current = val_loss()
        if current < best:
            best, best_table = current, items.weight.detach().clone()
    return best_table.cpu().numpy(), {"batches": batches, "best_val_loss": best, "epochs": cfg.max_epochs}
