"""Counter-based random streams: every draw is a pure function of (key, user, counter, index).

Why not a ``torch.Generator``: a sequential generator hands out numbers in call order, so which
numbers user i gets would depend on the batch it is stepped in and on what else consumed the
stream. Here the clicks of user i at turn t are a hash of (stream key, i, t, slot), so they are the
same for every policy, batch size and user offset (common random numbers, spec §1.12), and a batch
of users never needs a Python loop to get its own streams. The hash is SplitMix64's finaliser
evaluated with int64 tensor ops (wrap-around multiplication, masked logical shifts).
"""

from __future__ import annotations

import hashlib

import torch

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # SplitMix64 multipliers as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_TWO_PI = 6.283185307179586


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic on signed ints)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser (a bijection of 64-bit words with full avalanche)."""
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def stream_key(seed: int, name: str) -> int:
    """A signed 64-bit key for the stream ``name`` of ``seed`` (stable across runs and machines)."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def user_base(key: int, users: torch.Tensor) -> torch.Tensor:
    """The per-user half of the hash, ``(B,)``: the same for every counter, so a caller drawing
    many counters for the same users (the simulator, once per turn) computes it once."""
    return mix64(users.to(torch.int64) + key)


def uniforms(key: int, users: torch.Tensor, counter: int, n: int) -> torch.Tensor:
    """``(B, n)`` float32 uniforms in [0, 1) for draw ``counter`` of each user in ``users`` (B,)."""
    counters = torch.tensor([counter], device=users.device)
    return uniforms_block(user_base(key, users), counters, n)[:, 0]


def uniforms_block(base: torch.Tensor, counters: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, C, n)``: the uniforms of every counter in ``counters`` (C,) for users with
    :func:`user_base` ``base`` (B,), in one call."""
    mixed = mix64(base.unsqueeze(1) + counters.to(torch.int64) * _GOLDEN)  # int64 products wrap around
    idx = torch.arange(1, n + 1, device=base.device, dtype=torch.int64) * _GOLDEN
    bits = _shr(mix64(mixed.unsqueeze(2) + idx), 40)  # top 24 bits: exact in float32
    return bits.to(torch.float32) * (1.0 / (1 << 24))


def normals(key: int, users: torch.Tensor, counter: int, n: int) -> torch.Tensor:
    """``(B, n)`` standard normals (Box-Muller on two uniform draws per number)."""
    u = uniforms(key, users, counter, 2 * n)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[:, :n]))  # 1 - u is in (0, 1]: log is finite
    return radius * torch.cos(_TWO_PI * u[:, n:])
