"""RQ-VAE: an MLP autoencoder with a residual vector quantizer in its bottleneck (spec §2.2).

Encoder ``d -> 2048 -> 1024 -> 512 -> 256 -> 128 -> 64 -> e_dim`` (ReLU between layers),
decoder the mirror, L codebooks of K vectors of size ``e_dim``; at level l the code is
``argmin ||r_l - C_l[k]||^2`` and ``r_{l+1} = r_l - C_l[code]``; straight-through estimator.
Codebooks are initialised by k-means on the residuals of (up to) 20,480 items. Loss:

    MSE(dec(z_q), x) + w_q * mean_l [ MSE(C_l[code], sg(r_l)) + beta * MSE(sg(C_l[code]), r_l) ]

Training: AdamW, linear warm-up then constant LR, grad-norm clip 1; every ``eval_every`` epochs
the collision rate of the argmin codes over all items is measured and the lowest-collision
weights are kept (upstream generates SIDs from its best-collision checkpoint). Inputs are
z-scored per dimension (part of the model's state). The paper's budget is 10,000 epochs at batch
20,480 on a GPU; the default here is a small CPU budget (100 epochs at batch 256, ~2.5 min for
Industrial on one core), so expect more collisions than the released SIDs.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rl4rec.config import field
from rl4rec.genrec.sid.codec import SIDCodec
from rl4rec.genrec.sid.rqkmeans import kmeans

log = logging.getLogger(__name__)

__all__ = ["RQVAEConfig", "RQVAE", "train_rqvae"]


@dataclass(frozen=True)
class RQVAEConfig:
    """RQ-VAE architecture and training budget (``rqvae.*`` keys of ``build-sids``)."""

    hidden: tuple[int, ...] = field((2048, 1024, 512, 256, 128, 64), "encoder MLP widths (the decoder mirrors them)")
    e_dim: int = field(32, "latent / codebook vector size", ge=1)
    beta: float = field(0.25, "commitment weight", ge=0.0)
    quant_weight: float = field(1.0, "weight of the quantization loss", ge=0.0)
    lr: float = field(1e-3, "AdamW learning rate", gt=0.0)
    weight_decay: float = field(0.0, "AdamW weight decay", ge=0.0)
    epochs: int = field(100, "training epochs (paper: 10,000 at batch 20,480 on a GPU)", ge=1)
    warmup_epochs: int = field(10, "linear warm-up epochs, then a constant LR", ge=0)
    batch_size: int = field(256, "items per step (paper launcher: 20,480; small batches give more steps on CPU)", ge=1)
    init_items: int = field(20480, "items the k-means codebook initialisation sees", ge=1)
    eval_every: int = field(10, "measure the collision rate every N epochs and keep the best weights", ge=1)
    kmeans_iters: int = field(100, "k-means iterations of the codebook initialisation", ge=1)
    standardize: bool = field(
        True, "z-score every input dimension first (normalised sentence embeddings have tiny per-dimension scale)"
    )


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, codebook_sizes: tuple[int, ...], cfg: RQVAEConfig):
        super().__init__()
        dims = [in_dim, *cfg.hidden, cfg.e_dim]
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        self.codebooks = nn.ParameterList([nn.Parameter(torch.zeros(k, cfg.e_dim)) for k in codebook_sizes])
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        # input standardisation (identity unless train_rqvae sets it); part of the model's state
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.cfg = cfg
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, seed: int) -> None:
        r = self.encoder(self.standardize(x))
        for level, book in enumerate(self.codebooks):
            centroids, assign = kmeans(r, book.shape[0], iters=self.cfg.kmeans_iters, seed=seed + level)
            book.data[: centroids.shape[0]] = centroids.to(book.dtype)
            r = r - book.data[assign]
        self.initialised.fill_(True)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(z_q with straight-through, codes (B, L), quantization loss, level inputs)``."""
        r = z
        z_q = torch.zeros_like(z)
        codes, losses, inputs = [], [], []
        for book in self.codebooks:
            inputs.append(r.detach())
            code = torch.cdist(r.detach(), book.detach()).argmin(1)
            q = book[code]
            losses.append(nn.functional.mse_loss(q, r.detach()) + self.cfg.beta * nn.functional.mse_loss(q.detach(), r))
            q_st = r + (q - r).detach()
            z_q = z_q + q_st
            r = r - q.detach()
            codes.append(code)
        return z_q, torch.stack(codes, 1), torch.stack(losses).mean(), inputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, reconstruction in input units, codes)``; the loss is in standardised units."""
        xs = self.standardize(x)
        z_q, codes, q_loss, _ = self.quantize(self.encoder(xs))
        recon = self.decoder(z_q)
        loss = nn.functional.mse_loss(recon, xs) + self.cfg.quant_weight * q_loss
        return loss, recon * self.x_std + self.x_mean, codes

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Argmin codes ``(N, L)`` and the last level's input residuals ``(N, e_dim)``."""
        codes, last = [], []
        for i in range(0, x.shape[0], batch_size):
            _, c, _, inputs = self.quantize(self.encoder(self.standardize(x[i : i + batch_size])))
            codes.append(c)
            last.append(inputs[-1])
        return torch.cat(codes).numpy(), torch.cat(last).numpy()


def _mlp(dims: list[int]) -> nn.Sequential:
    layers = [m for a, b in itertools.pairwise(dims) for m in (nn.Linear(a, b), nn.ReLU())]
    return nn.Sequential(*layers[:-1])  # no ReLU after the last layer


def train_rqvae(
    x: np.ndarray, codebook_sizes: tuple[int, ...], cfg: RQVAEConfig = RQVAEConfig(), *, seed: int = 2024
) -> tuple[RQVAE, dict]:
    """Train on ``x`` ``(N, d)``; returns the best-collision model and a training log."""
    torch.manual_seed(seed)
    data = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    model = RQVAE(data.shape[1], tuple(codebook_sizes), cfg)
    if cfg.standardize:
        model.x_mean.copy_(data.mean(0))
        model.x_std.copy_(data.std(0).clamp(min=1e-8))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0)
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), float("inf"))
    best_state = None
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(data.shape[0], generator=gen)
        total = 0.0
        for i in range(0, data.shape[0], cfg.batch_size):
            batch = data[perm[i : i + cfg.batch_size]]
            if not bool(model.initialised):  # k-means on up to init_items items (paper: its first batch of 20,480)
                model.init_codebooks(data[perm[: max(cfg.init_items, cfg.batch_size)]], seed)
            loss, _, _ = model(batch)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * batch.shape[0]
        sched.step()
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            model.eval()
            codes, _ = model.encode_codes(data)
            rate = SIDCodec(codes).collisions()["collision_rate"]
            history.append({"epoch": epoch, "loss": total / data.shape[0], "collision_rate": rate})
            if (rate, total) < best:
                best = (rate, total)
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            log.info("rqvae epoch %d loss %.5f collision rate %.4f", epoch, total / data.shape[0], rate)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"history": history, "best_collision_rate": best[0], "train_s": time.perf_counter() - t0}
