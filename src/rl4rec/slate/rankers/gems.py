"""GeMS: the slate VAE of spec slate_rl.md §3, as an ensemble over seeds.

Encoder q(z | slate, clicks): [10 item embeddings (200), 10 clicks] -> 512 -> 256 -> 2d.
Decoder p(slate, clicks | z): d -> 256 -> 512 (ReLU after both), a slate head giving one query
per slot scored against the (detached) item table, and a click head.
Loss = CE_slate + lambda_click * BCE_click + beta * KL (+ lambda_prior * 0 with the fixed prior).

Faithful mode keeps the official reparameterisation ``mu + eps * var`` and the KL averaged over
latent dims; ``fix_reparam`` / ``fix_kl_sum`` correct them (spec §9 items 11-12).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rl4rec.config import field
from rl4rec.slate.nets import EnsembleEmbedding, EnsembleLinear, EnsembleMLP


@dataclass(frozen=True)
class GeMSConfig:
    """GeMS architecture and loss weights (paper/config values as defaults)."""

    latent_dim: int = field(32, "latent (action) dimension d", ge=1, short="d")
    item_dim: int = field(20, "GeMS's own item-embedding size", ge=1)
    lambda_kl: float = field(1.0, "beta: weight of the KL term", ge=0.0, short="kl")
    lambda_click: float = field(0.5, "weight of the click BCE term", ge=0.0, short="click")
    encoder_hidden: tuple[int, ...] = field((512, 256), "encoder hidden layers")
    decoder_hidden: tuple[int, ...] = field((256, 512), "decoder trunk layers (ReLU after each)")
    fix_reparam: bool = field(False, "fixed: z = mu + eps*sigma (official: eps*variance)")
    fix_kl_sum: bool = field(False, "fixed: KL summed over latent dims (official: averaged)")


class GeMS(nn.Module):
    def __init__(self, seeds: Sequence[int], num_items: int, rec_size: int, cfg: GeMSConfig):
        super().__init__()
        self.cfg, self.num_items, self.rec_size = cfg, num_items, rec_size
        d = cfg.latent_dim
        self.items = EnsembleEmbedding(seeds, num_items, cfg.item_dim, "gems/items")
        self.encoder = EnsembleMLP(seeds, rec_size * cfg.item_dim + rec_size, cfg.encoder_hidden, 2 * d, "gems/enc")
        dims = [d, *cfg.decoder_hidden]
        self.trunk = nn.ModuleList(EnsembleLinear(seeds, a, b, f"gems/dec/{i}") for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)))
        self.slate_head = EnsembleLinear(seeds, dims[-1], rec_size * cfg.item_dim, "gems/slate")
        self.click_head = EnsembleLinear(seeds, dims[-1], rec_size, "gems/click")

    # -- pieces ------------------------------------------------------------------------
    def encode(self, slates: torch.Tensor, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, K) -> mu, log-variance (S, B, d)."""
        emb = self.items(slates.long()).flatten(-2)
        out = self.encoder(torch.cat([emb, clicks.to(emb.dtype)], dim=-1))
        return out.chunk(2, dim=-1)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, d) -> item logits (S, B, K, N) against the detached table, click logits (S, B, K)."""
        h = self._trunk(z)
        return self._item_logits(h), self.click_head(h)

    def _trunk(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.trunk:
            z = torch.relu(layer(z))
        return z

    def _item_logits(self, h: torch.Tensor) -> torch.Tensor:
        s, b = h.shape[:2]
        queries = self.slate_head(h).reshape(s, b * self.rec_size, self.cfg.item_dim)
        return torch.bmm(queries, self.items.weight.detach().transpose(1, 2)).reshape(s, b, self.rec_size, -1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        spread = torch.exp(0.5 * logvar) if self.cfg.fix_reparam else torch.exp(logvar)
        return mu + eps * spread

    # -- loss ----------------------------------------------------------------------------
    def loss(
        self, slates: torch.Tensor, clicks: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-member loss terms, each (S,): total, slate CE, click BCE, KL."""
        mu, logvar = self.encode(slates, clicks)
        z = self.reparameterize(mu, logvar, generator) if sample else mu
        item_logits, click_logits = self.decode(z)
        s = slates.shape[0]
        ce = F.cross_entropy(item_logits.reshape(-1, self.num_items), slates.long().reshape(-1), reduction="none")
        ce = ce.reshape(s, -1).mean(1)
        bce = F.binary_cross_entropy_with_logits(click_logits, clicks.float(), reduction="none").reshape(s, -1).mean(1)
        kl_dims = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())  # (S, B, d)
        kl = kl_dims.sum(-1).mean(-1) if self.cfg.fix_kl_sum else kl_dims.reshape(s, -1).mean(1)
        total = ce + self.cfg.lambda_click * bce + self.cfg.lambda_kl * kl
        return {"loss": total, "slate_ce": ce, "click_bce": bce, "kl": kl}

    # -- use at RL time ------------------------------------------------------------------
    @torch.no_grad()
    def rank(self, action: torch.Tensor) -> torch.Tensor:
        """Latent actions (S, B, d) -> slates (S, B, K): argmax per slot, duplicates allowed (§3.4)."""
        # the click head is not needed; max(-1).indices is argmax (first maximum on ties), faster
        return self._item_logits(self._trunk(action)).max(-1).indices

    @torch.no_grad()
    def action_bounds(self, slates: torch.Tensor, clicks: torch.Tensor, chunk: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
        """Box of the RL action from logged (slate, clicks) pairs (S, M, K): per dim min(mu-sigma), max(mu+sigma).

        Returns ``center, scale`` (S, d) with ``center = (hi + lo) / 2``, ``scale = (hi - lo) / 2``.
        """
        lo = hi = None
        for start in range(0, slates.shape[1], chunk):
            mu, logvar = self.encode(slates[:, start : start + chunk], clicks[:, start : start + chunk])
            sigma = torch.exp(0.5 * logvar)
            low, high = (mu - sigma).amin(1), (mu + sigma).amax(1)
            lo = low if lo is None else torch.minimum(lo, low)
            hi = high if hi is None else torch.maximum(hi, high)
        return (hi + lo) / 2, (hi - lo) / 2
