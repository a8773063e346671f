"""Ensembles of small networks with a leading seed dimension S: N seeds train in one process.

The paper protocol needs 10 seeds per cell; with one network per seed the per-step cost is
dominated by Python and kernel-launch overhead of tiny matmuls. Stacking the S seeds' weights
and using batched matmuls (``baddbmm``) makes S seeds cost little more than one. Every module
takes and returns tensors shaped ``(S, batch, ...)``; member ``s`` is initialised from its own
seed, as ``nn.Linear`` would be, so an ensemble of one is an ordinary network.

We write these by hand rather than use ``torch.func.stack_module_state`` + ``vmap`` because the
GRU belief encoder (``nn.GRU``) is not vmappable and the whole agent should share one layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from rl4rec.slate.gru_sequence import gru_sequence


def _uniform(shape: Sequence[int], bound: float, gens: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens])


def member_generators(seeds: Sequence[int], salt: str) -> list[torch.Generator]:
    """One generator per ensemble member, keyed by (seed, salt) so each module differs."""
    salt_hash = sum(ord(c) * 31**i for i, c in enumerate(salt))
    return [torch.Generator().manual_seed((int(seed) * 1_000_003 + salt_hash) % (2**63 - 1)) for seed in seeds]


class EnsembleLinear(nn.Module):
    """S independent ``Linear(in, out)`` layers applied to (S, B, in) in one ``baddbmm``."""

    def __init__(self, seeds: Sequence[int], in_dim: int, out_dim: int, salt: str):
        super().__init__()
        gens = member_generators(seeds, salt)
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default (kaiming_uniform with a=sqrt(5))
        self.weight = nn.Parameter(_uniform((in_dim, out_dim), bound, gens))
        self.bias = nn.Parameter(_uniform((1, out_dim), bound, gens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        out = torch.baddbmm(self.bias, flat, self.weight)
        return out.reshape(*shape[:-1], out.shape[-1])

    def select(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Only output ``index[..]`` of each row: (S, ..., in), (S, ...) -> (S, ...).

        Equal to ``forward(x).gather(-1, index[..., None])[..., 0]`` without computing the other
        outputs (SlateQ needs Q(s, i) of one item out of 1,000 per transition).
        """
        s = x.shape[0]
        flat_x = x.reshape(s, -1, x.shape[-1])
        flat_i = index.reshape(s, -1)
        w = torch.gather(self.weight.transpose(1, 2), 1, flat_i.unsqueeze(-1).expand(-1, -1, self.weight.shape[1]))
        b = torch.gather(self.bias[:, 0], 1, flat_i)
        return ((flat_x * w).sum(-1) + b).reshape(index.shape)


class EnsembleMLP(nn.Module):
    """in -> hidden... -> out with ReLU between layers (linear output), per ensemble member."""

    def __init__(self, seeds: Sequence[int], in_dim: int, hidden: Sequence[int], out_dim: int, salt: str):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(seeds, a, b, f"{salt}/{i}") for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (after its ReLU)."""
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[-1](self.features(x))

    def select(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Output ``index`` only (see :meth:`EnsembleLinear.select`)."""
        return self.layers[-1].select(self.features(x), index)


class EnsembleEmbedding(nn.Module):
    """S item tables (S, N, D), initialised N(0, 1) like ``nn.Embedding``."""

    def __init__(self, seeds: Sequence[int], num: int, dim: int, salt: str):
        super().__init__()
        gens = member_generators(seeds, salt)
        self.weight = nn.Parameter(torch.stack([torch.randn(num, dim, generator=g) for g in gens]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (S, ...) -> (S, ..., D).

        One ``index_select`` from the (S*N, D) stack with member offsets: with its index-add
        backward, about 3x faster than a batched ``gather`` for one member.
        """
        s, n, d = self.weight.shape
        offsets = torch.arange(0, s * n, n, device=ids.device).view(s, *([1] * (ids.dim() - 1)))
        flat = self.weight.reshape(s * n, d).index_select(0, (ids + offsets).reshape(-1))
        return flat.view(*ids.shape, d)


class EnsembleGRU(nn.Module):
    """A 1-layer GRU per member (PyTorch's gate equations), batched over members.

    The input projection of a whole sequence is one batched matmul; the small hidden recurrence
    runs as one autograd node with a hand-written backward (``rl4rec.slate.gru_sequence``).
    """

    def __init__(self, seeds: Sequence[int], in_dim: int, hidden: int, salt: str):
        super().__init__()
        gens = member_generators(seeds, salt)
        bound = 1.0 / math.sqrt(hidden)  # nn.GRU's init
        self.hidden = hidden
        self.w_ih = nn.Parameter(_uniform((in_dim, 3 * hidden), bound, gens))
        self.w_hh = nn.Parameter(_uniform((hidden, 3 * hidden), bound, gens))
        self.b_ih = nn.Parameter(_uniform((1, 3 * hidden), bound, gens))
        self.b_hh = nn.Parameter(_uniform((1, 3 * hidden), bound, gens))

    def input_proj(self, x: torch.Tensor) -> torch.Tensor:
        """x (S, B, T, in) or (S, B, in) -> gate pre-activations from the input."""
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        return torch.baddbmm(self.b_ih, flat, self.w_ih).reshape(*shape[:-1], 3 * self.hidden)

    def cell(self, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from projected input ``gi`` (S, B, 3H) and hidden ``h`` (S, B, H)."""
        gh = torch.baddbmm(self.b_hh, h, self.w_hh)
        hid = self.hidden
        rz = torch.sigmoid(gi[..., : 2 * hid] + gh[..., : 2 * hid])  # r and z in one op
        n = torch.tanh(gi[..., 2 * hid :] + rz[..., :hid] * gh[..., 2 * hid :])
        return torch.lerp(n, h, rz[..., hid:])  # (1 - z) n + z h, as the sequence node computes it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (S, B, T, in) -> hidden states (S, B, T, H), from a zero initial state."""
        h0 = x.new_zeros(x.shape[0], x.shape[1], self.hidden)
        return gru_sequence(self.input_proj(x), h0, self.w_hh, self.b_hh)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Treat the modules' parameters as constants inside the block (autograd computes gradients
    for the inputs only), then restore their ``requires_grad``."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def descend(opt: torch.optim.Optimizer, losses: torch.Tensor) -> None:
    """One optimizer step on the sum of per-member losses: members' gradients stay independent
    (Adam is elementwise)."""
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()


def select_members(mask: torch.Tensor, state: dict[str, torch.Tensor], into: dict[str, torch.Tensor]) -> dict:
    """State dict with the members in ``mask`` (S,) taken from ``state`` and the others from ``into``;
    entries without the leading member dim S are copied from ``state``."""
    out = {}
    for key, value in state.items():
        if value.dim() == 0 or value.shape[0] != mask.shape[0]:
            out[key] = value.clone()
        else:
            out[key] = torch.where(mask.view(-1, *([1] * (value.dim() - 1))), value, into[key])
    return out


def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` in place."""
    with torch.no_grad():
        for tp, sp in zip(target.parameters(), source.parameters(), strict=True):
            tp.lerp_(sp, tau)
