"""One device layer for every trainer and evaluator: device, mixed precision and process group.

Built on ``accelerate``'s :class:`~accelerate.PartialState`, which reads the launcher's environment
(``accelerate launch``, ``torchrun``: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), sets up the process
group (NCCL on GPUs, gloo on CPU) and picks this process's device. Mixed precision is applied here
with ``torch.autocast`` (and a gradient scaler for fp16) rather than through ``Accelerator``:
``Accelerator`` keeps one process-wide precision that cannot change between two runs in the same
Python process (tests, sweeps in one worker), while autocast is a plain context per run.

Every training config carries ``device`` and ``mixed_precision`` (see
:class:`rl4rec.training.LoopConfig`); ``device=cuda`` where no CUDA device is visible stops with a
one-line :class:`~rl4rec.config.ConfigError`, never a silent CPU run.

Models are not wrapped in DDP: the trainers sum gradients explicitly once per optimizer step
(:func:`sum_gradients`) after normalising each loss by the *global* token or row count, so 1 and
N processes make the same update (tested) and micro-batch accumulation needs no extra all-reduce.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from rl4rec.config import ConfigError
from rl4rec.errors import NonFiniteError

__all__ = [
    "Devices",
    "resolve_device",
    "check_device_keys",
    "world",
    "all_gather_rows",
    "sum_gradients",
    "mean_over_processes",
    "default_device",
]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_device_keys(device: str, mixed_precision: str = "no") -> None:
    """Fail early, with the key named, on a device or precision this machine cannot give."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA device is visible here (torch.cuda.is_available() is False); use device=auto or device=cpu")
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if mixed_precision == "fp16" and not on_cuda:
        raise ConfigError("mixed_precision=fp16 needs a CUDA device; use mixed_precision=bf16 (CPU autocast) or no")
    if mixed_precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("mixed_precision=bf16: this GPU does not support bfloat16; use fp16 or no")


def resolve_device(device: str, mixed_precision: str = "no") -> torch.device:
    """``auto`` -> CUDA when visible else CPU; ``cuda`` -> this process's GPU (``LOCAL_RANK``)."""
    check_device_keys(device, mixed_precision)
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % max(1, torch.cuda.device_count()))


def default_device(device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context in which tensor factories without ``device=`` land on ``device`` (torch's device
    context manager), for code written once for every device (the slate episode, buffer and
    agents). A no-op on the CPU, so CPU runs take exactly the path they always took."""
    device = torch.device(device)
    return contextlib.nullcontext() if device.type == "cpu" else device


class Devices:
    """The device, precision and process group of one run.

    ``Devices(device="auto", mixed_precision="no")``: ``.device``, ``.rank``, ``.world``,
    ``.is_main``, ``.autocast()``, ``.backward(loss)``, ``.step(optimizer, params, grad_clip)``,
    ``.any(flag)`` (true on every process when true on one), ``.wait()``.
    """

    def __init__(self, device: str = "auto", mixed_precision: str = "no", skip_nonfinite: bool = False):
        check_device_keys(device, mixed_precision)
        self.mixed_precision, self.skip_nonfinite = mixed_precision, skip_nonfinite
        #: updates skipped because their gradients were NaN/inf (``skip_nonfinite``)
        self.skipped = 0
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = device == "cpu" or not torch.cuda.is_available()
        if launched > 1 or (dist.is_available() and dist.is_initialized()):
            from accelerate import PartialState

            state = PartialState(cpu=cpu)
            self.device = state.device if not cpu else torch.device("cpu")
            self.rank, self.world = state.process_index, state.num_processes
        else:  # one process: no accelerate state to share with other runs in this interpreter
            self.device = resolve_device(device, mixed_precision)
            self.rank, self.world = 0, 1
        if launched != self.world:  # never let N launched processes each train (and write) as if alone
            raise RuntimeError(f"launched as {launched} processes but the process group has {self.world}; check the launcher")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self._scaler = torch.amp.GradScaler("cuda") if mixed_precision == "fp16" else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for forward passes (a no-op with ``mixed_precision=no``)."""
        if self.mixed_precision == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.mixed_precision])

    def backward(self, loss: torch.Tensor) -> None:
        (self._scaler.scale(loss) if self._scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], grad_clip: float = 0.0) -> float:
        """Sum gradients over processes, clip (after unscaling fp16), step; returns the grad norm.

        With several processes a parameter without a gradient on this process (its rows were
        elsewhere) gets zeros first, so every process all-reduces the same tensors.
        """
        params = list(params)
        if self.world > 1:
            for p in params:
                if p.grad is None and p.requires_grad:
                    p.grad = torch.zeros_like(p)
        params = [p for p in params if p.grad is not None]
        sum_gradients(params)
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip else _total_norm(params)
        if not torch.isfinite(norm) and self._scaler is None:  # fp16: the scaler skips and rescales itself
            if not self.skip_nonfinite:
                raise NonFiniteError("non-finite gradients (NaN/inf); the run stops with its last good checkpoint; skip_nonfinite=true skips such updates")
            optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
        elif self._scaler is not None:
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            optimizer.step()
        return float(norm)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on at least one (a stop, a new best)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item())

    def wait(self) -> None:
        if self.world > 1:
            dist.barrier()

    def describe(self) -> dict[str, Any]:
        return {"device": str(self.device), "processes": self.world, "mixed_precision": self.mixed_precision}


# --------------------------------------------------------------------------- process group


def _total_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The gradients' global L2 norm (what clipping would measure), without rescaling them."""
    grads = [p.grad for p in params]
    if not grads:
        return torch.zeros(())
    get = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    return get(grads) if get is not None else torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate every process's rows (sizes may differ); returns the whole and this rank's offset."""
    rank, size_w = world()
    if size_w == 1:
        return x, 0
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)  # NCCL gathers device tensors
    sizes = [torch.zeros_like(size) for _ in range(size_w)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = torch.zeros((max(counts), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in range(size_w)]
    dist.all_gather(parts, padded)
    whole = torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])
    return whole, sum(counts[:rank])


def sum_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce (sum) the gradients of ``parameters`` across processes."""
    if world()[1] == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def mean_over_processes(metrics: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Each metric averaged over processes (identity on one process)."""
    n = world()[1]
    if n == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    vec = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(vec)
    return {k: float(v) / n for k, v in zip(keys, vec.tolist(), strict=True)}
