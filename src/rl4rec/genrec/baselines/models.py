"""Sequential baselines that score every item: popularity, SASRec, GRU4Rec (spec genrec.md §9).

All share one interface (:class:`SequentialRecommender`):

- ``forward(seqs, lengths) -> (B, N)`` logits over all items, from right-padded id sequences
  (pad id = ``num_items``) and their lengths;
- ``score(histories, items) -> (B,)`` or ``(B, M)``: scores of given (history, item) pairs in one
  batch — the CF reward of GRPO;
- ``save(path)`` / ``load_model(path)``: a plain ``{"kind", "config", "state_dict"}`` file read
  with ``weights_only=True``.

SASRec follows the upstream variant: one block, one head, d = 32, max length 10, dropout 0.3;
right padding with a learned positional embedding; the block is
``q = LN1(x); x = q + Attn(q, x, x); x = LN_f(LN2(x) + FFN(LN2(x))); x *= mask``, a final LN,
then the hidden state at position ``len - 1`` goes through ``Linear(d, N)``. Attention scores are
scaled by sqrt(d / heads), the head size (upstream divides by sqrt(d): the same at its one head,
too flat a softmax with more), with causal and key-padding masks, and the attention weights of
padded queries are zeroed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rl4rec.genrec.data.examples import pad_histories

__all__ = ["SequentialRecommender", "SASRec", "GRU4Rec", "Popularity", "load_model", "MODELS"]


class SequentialRecommender(nn.Module):
    """Base class: padding helpers, ``score`` and save/load. Subclasses implement ``forward``."""

    kind = ""

    def __init__(self, num_items: int, max_len: int):
        super().__init__()
        self.num_items = num_items
        self.max_len = max_len
        self.hparams: dict[str, Any] = {}  # constructor arguments besides these two (saved in config)

    @property
    def pad_id(self) -> int:
        return self.num_items

    def config(self) -> dict[str, Any]:
        return {"num_items": self.num_items, "max_len": self.max_len, **self.hparams}

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def batch(self, histories: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(B, max_len)`` ids (the last ``max_len`` items) and lengths."""
        if any(len(h) == 0 for h in histories):
            raise ValueError("every history needs at least one item")
        seqs, lengths = pad_histories(histories, self.max_len, pad=self.pad_id)
        if seqs.size and (seqs.min() < 0 or seqs.max() > self.pad_id):
            raise ValueError(f"history item ids must lie in [0, {self.num_items})")
        device = next(self.parameters(), torch.empty(0)).device
        return torch.as_tensor(seqs, device=device), torch.as_tensor(lengths, device=device)

    def logits(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(B, N)`` scores of every item after each history."""
        return self(*self.batch(histories))

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[int]], items: Any) -> torch.Tensor:
        """Scores of ``items`` after ``histories``, batched: ``items`` ``(B,)`` -> ``(B,)``,
        ``(B, M)`` -> ``(B, M)``. Item ids must be valid catalog ids (no silent fallback)."""
        was_training = self.training
        self.eval()
        try:
            logits = self.logits(histories)
            idx = torch.as_tensor(np.asarray(items) if not isinstance(items, torch.Tensor) else items, dtype=torch.long)
            idx = idx.to(logits.device)
            if idx.shape[0] != logits.shape[0]:
                raise ValueError(f"{idx.shape[0]} item rows for {logits.shape[0]} histories")
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_items):
                raise ValueError(f"item ids must lie in [0, {self.num_items}); map invalid generations before scoring")
            flat = idx.reshape(idx.shape[0], -1)
            return logits.gather(1, flat).reshape(idx.shape)
        finally:
            self.train(was_training)

    def save(self, path: str | Path) -> Path:
        from rl4rec.runs import atomic_torch_save

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"kind": self.kind, "config": self.config(), "state_dict": self.state_dict()}, path)
        return path


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"hidden size {d} is not divisible by {heads} heads")
        self.heads = heads
        self.ln1, self.ln2, self.ln_ffn = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.w1, self.w2 = nn.Linear(d, d), nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        h = self.heads
        q_in = self.ln1(x)
        q = self.q(q_in).view(b, length, h, d // h).transpose(1, 2)
        k = self.k(x).view(b, length, h, d // h).transpose(1, 2)
        v = self.v(x).view(b, length, h, d // h).transpose(1, 2)
        att = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None, None] & mask[:, None, None, :]
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        att = torch.nan_to_num(att) * mask[:, None, :, None]
        att = self.drop(att)
        x = q_in + (att @ v).transpose(1, 2).reshape(b, length, d)
        y = self.ln2(x)
        y = self.ln_ffn(y + self.drop(self.w2(self.drop(torch.relu(self.w1(y))))))
        return y * mask[..., None]


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), upstream MiniOneRec variant."""

    kind = "sasrec"

    def __init__(self, num_items: int, hidden: int = 32, max_len: int = 10, num_blocks: int = 1, num_heads: int = 1, dropout: float = 0.3):
        super().__init__(num_items, max_len)
        self.hparams = {"hidden": hidden, "num_blocks": num_blocks, "num_heads": num_heads, "dropout": dropout}
        self.item_emb = nn.Embedding(num_items + 1, hidden)
        self.pos_emb = nn.Embedding(max_len, hidden)
        nn.init.normal_(self.item_emb.weight, 0.0, 0.01)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden, num_heads, dropout) for _ in range(num_blocks))
        self.ln_final = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, num_items)

    def encode(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` hidden state at position ``len - 1``."""
        mask = seqs != self.pad_id
        pos = torch.arange(seqs.shape[1], device=seqs.device)
        x = self.emb_drop(self.item_emb(seqs) + self.pos_emb(pos)[None]) * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), lengths - 1]

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(seqs, lengths))


class GRU4Rec(SequentialRecommender):
    """GRU over the (packed) history; the final hidden state goes through ``Linear(d, N)``."""

    kind = "gru4rec"

    def __init__(self, num_items: int, hidden: int = 32, max_len: int = 10, dropout: float = 0.3, num_layers: int = 1):
        super().__init__(num_items, max_len)
        self.hparams = {"hidden": hidden, "dropout": dropout, "num_layers": num_layers}
        self.item_emb = nn.Embedding(num_items + 1, hidden, padding_idx=num_items)
        self.emb_drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, num_items)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.emb_drop(self.item_emb(seqs))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(h[-1])


class Popularity(SequentialRecommender):
    """Most-popular: every history gets the same scores, the item's count in the training targets."""

    kind = "pop"

    def __init__(self, num_items: int, max_len: int = 10, counts: Any = None):
        super().__init__(num_items, max_len)
        c = torch.zeros(num_items) if counts is None else torch.as_tensor(np.asarray(counts), dtype=torch.float32)
        if c.shape != (num_items,):
            raise ValueError(f"counts must have shape ({num_items},), got {tuple(c.shape)}")
        self.register_buffer("counts", c.float())

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        return self.counts[None].expand(seqs.shape[0], -1)

    def batch(self, histories: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs, lengths = pad_histories(histories, self.max_len, pad=self.pad_id)
        return torch.as_tensor(seqs), torch.as_tensor(lengths)


MODELS: dict[str, type[SequentialRecommender]] = {"sasrec": SASRec, "gru4rec": GRU4Rec, "pop": Popularity}


def load_model(path: str | Path) -> SequentialRecommender:
    """A model saved by :meth:`SequentialRecommender.save`, a run checkpoint (``best.pt``/``last.pt``)
    or a baseline run directory (its ``checkpoints/best.pt``)."""
    from rl4rec.runs import RunDir, load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = RunDir(path).checkpoint("best")
    blob = load_checkpoint(path)
    blob = blob.get("task", blob)  # a run checkpoint holds the task state ...
    blob = blob.get("model_file", blob)  # ... which wraps the model file's content
    if blob.get("kind") not in MODELS:
        raise ValueError(f"{path}: not a saved baseline model (kind {blob.get('kind')!r})")
    model = MODELS[blob["kind"]](**blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model
