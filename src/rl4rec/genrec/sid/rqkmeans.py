"""Residual k-means quantization (RQ-KMeans), plain and balanced, in pure torch (spec §2.3-2.4).

At each level a codebook of K centroids is fitted to the current residuals, every item takes a
code, and the residual becomes ``r - C[code]``. Two fitters:

- :func:`kmeans`: Lloyd's algorithm with k-means++ seeding; distances computed in batches so
  memory stays ``O(batch * K)``; an emptied cluster is re-seeded at the point farthest from its
  centroid.
- :func:`balanced_kmeans`: the same, but each assignment step respects exact capacities
  (``N // K`` per code, +1 for the first ``N mod K`` codes), so every code is used by
  ``N // K`` or ``N // K + 1`` items — the role of ``KMeansConstrained`` upstream, without the
  min-cost-flow solver. Items propose to their nearest code with room left; each code accepts its
  closest proposers up to capacity; rejected items propose again (a greedy matching).

``residual_kmeans`` chains either over L levels on the global residual matrix and returns codes,
codebooks and the per-level residual MSE.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["kmeans", "balanced_kmeans", "residual_kmeans", "RQResult", "sq_distances"]


def sq_distances(x: torch.Tensor, c: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """``(n, k)`` squared Euclidean distances, computed ``batch_size`` rows at a time."""
    c_sq = (c * c).sum(1)
    out = torch.empty(x.shape[0], c.shape[0], dtype=x.dtype)
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size]
        out[i : i + batch_size] = ((xb * xb).sum(1, keepdim=True) - 2 * xb @ c.T + c_sq).clamp_(min=0)
    return out


def _kmeanspp(x: torch.Tensor, k: int, gen: torch.Generator, batch_size: int) -> torch.Tensor:
    """Greedy k-means++ (as scikit-learn): each new centre is the best of ``2 + ln k`` candidates
    drawn proportionally to the squared distance to the nearest chosen centre."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    centers = [int(torch.randint(n, (1,), generator=gen))]
    closest = sq_distances(x, x[centers], batch_size)[:, 0]
    for _ in range(1, k):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than k: take any unused points
            centers.append(next((i for i in range(n) if i not in centers), centers[-1]))
            continue
        cand = torch.multinomial(closest / total, trials, replacement=True, generator=gen)
        new_closest = torch.minimum(closest[None, :], sq_distances(x[cand], x, batch_size))  # (trials, n)
        best = int(new_closest.sum(1).argmin())
        centers.append(int(cand[best]))
        closest = new_closest[best]
    return x[centers].clone()


def _lloyd(
    x: torch.Tensor, centroids: torch.Tensor, assign_fn, iters: int, tol: float, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations from ``centroids`` with ``assign_fn(distances (n, k)) -> codes (n,)``, until
    the inertia stops falling by more than ``tol``; returns the centroids and the final assignment."""
    prev = float("inf")
    for _ in range(iters):
        d = sq_distances(x, centroids, batch_size)
        assign = assign_fn(d)
        own = d.gather(1, assign[:, None])[:, 0]
        inertia = float(own.sum())
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=centroids.shape[0]).to(x.dtype)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        empty = torch.nonzero(counts == 0).flatten()
        if empty.numel():  # re-seed each empty cluster at the currently worst-served point
            centroids[empty] = x[torch.argsort(own, descending=True)[: empty.numel()]]
        if prev - inertia <= tol * max(prev, 1e-12):
            break
        prev = inertia
    return centroids, assign_fn(sq_distances(x, centroids, batch_size))


def kmeans(
    x: np.ndarray | torch.Tensor, k: int, *, iters: int = 50, seed: int = 0, tol: float = 1e-6, batch_size: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``k`` centroids to ``x`` ``(n, d)``; returns ``(centroids (k, d), assignment (n,))``.

    ``k`` larger than ``n`` is reduced to ``n`` (with a log line): a code cannot be used by
    fewer than one item.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    n = x.shape[0]
    if k > n:
        log.info("k-means: %d clusters requested for %d points; using %d", k, n, n)
        k = n
    gen = torch.Generator().manual_seed(seed)
    return _lloyd(x, _kmeanspp(x, k, gen, batch_size), lambda d: d.argmin(1), iters, tol, batch_size)


def balanced_assign(d: torch.Tensor, capacity: torch.Tensor) -> torch.Tensor:
    """Assign each row of ``d`` ``(n, k)`` to a column, never exceeding ``capacity`` ``(k,)``.

    Rounds: every unassigned item proposes to its nearest column with room; each column accepts
    its closest proposers up to its remaining room. Needs ``capacity.sum() >= n``.
    """
    n, k = d.shape
    if int(capacity.sum()) < n:
        raise ValueError(f"capacities sum to {int(capacity.sum())} < {n} items")
    assign = torch.full((n,), -1, dtype=torch.long)
    room = capacity.clone()
    while True:
        todo = torch.nonzero(assign < 0).flatten()
        if not todo.numel():
            return assign
        masked = d[todo].masked_fill((room <= 0)[None, :], float("inf"))
        dist, choice = masked.min(1)
        # order proposals by (column, distance) and keep the first room[column] of each column
        order = torch.argsort(dist, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]
        cols = choice[order]
        first = torch.searchsorted(cols, cols, right=False)
        rank = torch.arange(cols.numel()) - first
        take = rank < room[cols]
        assign[todo[order[take]]] = cols[take]
        room -= torch.bincount(cols[take], minlength=k)


def balanced_kmeans(
    x: np.ndarray | torch.Tensor, k: int, *, iters: int = 30, seed: int = 0, tol: float = 1e-6, batch_size: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means whose clusters have sizes ``N // k`` or ``N // k + 1`` (see the module docstring)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    n = x.shape[0]
    k = min(k, n)
    centroids, _ = kmeans(x, k, iters=max(1, iters // 3), seed=seed, batch_size=batch_size)
    cap = torch.full((k,), n // k, dtype=torch.long)
    cap[: n % k] += 1
    return _lloyd(x, centroids, lambda d: balanced_assign(d, cap), iters, tol, batch_size)


@dataclass
class RQResult:
    """Codes ``(N, L)``, the codebooks (one ``(K_l, d)`` array per level), the residual entering
    each level (``(L, N, d)``, for last-level collision handling) and the residual MSE after each
    level."""

    codes: np.ndarray
    codebooks: list[np.ndarray]
    level_inputs: list[np.ndarray]
    residual_mse: list[float]


def residual_kmeans(
    x: np.ndarray,
    codebook_sizes: tuple[int, ...] | list[int] = (256, 256, 256),
    *,
    balanced: bool = False,
    iters: int = 50,
    seed: int = 0,
    batch_size: int = 8192,
) -> RQResult:
    """RQ-KMeans over ``len(codebook_sizes)`` levels; level ``l`` is seeded with ``seed + l``."""
    r = torch.as_tensor(np.asarray(x), dtype=torch.float64).clone()
    fit = balanced_kmeans if balanced else kmeans
    codes, books, inputs, mse = [], [], [], []
    for level, k in enumerate(codebook_sizes):
        inputs.append(r.numpy().astype(np.float32).copy())
        centroids, assign = fit(r, k, iters=iters, seed=seed + level, batch_size=batch_size)
        r = r - centroids[assign]
        codes.append(assign.numpy())
        books.append(centroids.numpy().astype(np.float32))
        mse.append(float((r * r).sum(1).mean()))
        log.info("RQ level %d: %d codes used of %d, residual MSE %.5f", level, len(np.unique(assign)), k, mse[-1])
    return RQResult(np.stack(codes, 1).astype(np.int64), books, inputs, mse)
