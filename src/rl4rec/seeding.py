"""One seed for python/numpy/torch, and the torch/OpenMP thread count."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; with a fixed thread count, CPU results are then identical."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_threads(threads: int) -> int:
    """Set torch intra-op threads (0 = all cores). Returns the number in use.

    On small machines oversubscription is the main performance trap: two torch threads while
    another process holds a core ran up to 30x slower here, so sweeps pass 1 per worker.
    """
    n = threads or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # for subprocesses started from here
    return n
