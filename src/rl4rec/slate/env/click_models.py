"""Position-based click models: per-slot examination probabilities (spec §1.6).

The official code carries a (K x K+1) UBM matrix indexed by the last clicked slot, but every row
is constant for both models used, so a vector is exact.
"""

from __future__ import annotations

from typing import Literal

import torch

ClickModel = Literal["tdPBM", "mixPBM"]
#: weight of the top-down component in mixPBM (hard-coded ``[0.5, 0.5]`` in the official code)
MIX_TOP_DOWN_WEIGHT = 0.5


def examination(
    click_model: ClickModel,
    rec_size: int = 10,
    gamma: float = 0.85,
    *,
    one_based: bool = False,
    threshold: float | None = None,
) -> torch.Tensor:
    """``(rec_size,)`` examination probabilities, slot 0 = top.

    tdPBM: ``gamma^r``; mixPBM: ``0.5 gamma^r + 0.5 gamma^(K-1-r)`` (0-based r, as the code).
    ``one_based`` uses the paper's formula (exponents r+1 and K-r). ``threshold`` turns them into
    hard 0/1 values (the unused official option ``prop_threshold``).
    """
    r = torch.arange(rec_size, dtype=torch.float64)
    shift = 1.0 if one_based else 0.0
    top_down = gamma ** (r + shift)
    if click_model == "tdPBM":
        exam = top_down
    elif click_model == "mixPBM":
        bottom_up = gamma ** (rec_size - 1 - r + shift)
        exam = MIX_TOP_DOWN_WEIGHT * top_down + (1 - MIX_TOP_DOWN_WEIGHT) * bottom_up
    else:
        raise ValueError(f"unknown click model {click_model!r}; valid: tdPBM, mixPBM")
    if threshold is not None:
        exam = (exam > threshold).to(torch.float64)
    return exam.to(torch.float32)
