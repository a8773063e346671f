"""Helpers of the 1-vs-2-process tests: one CLI run on one process and the same on two (torchrun,
gloo), their first logged step, and how far two state dicts are apart after an optimizer step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch


def torchrun() -> list[str]:
    """``torchrun --nproc_per_node 2`` on a port free now: tests run in parallel (pytest-xdist), so a
    fixed or pid-derived port could be taken by another worker's run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


def run_one_and_two(args: list[str]) -> None:
    """``rl4rec <args> run_name=one`` on one process and ``run_name=two`` on two; both must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "rl4rec.cli", *args, "run_name=one"], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([*torchrun(), "-m", "rl4rec.cli", *args, "run_name=two"], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]


def first_step(run_dir: Path) -> dict:
    return next(json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if json.loads(x).get("step") == 1)


def assert_nearly_same_weights(a: dict, b: dict) -> None:
    """Adam divides by the gradient's own scale, so a coordinate whose gradient is ~0 turns the
    float-summation noise of 1 vs 2 processes into a visible step: allow a few such coordinates."""
    diffs = torch.cat([(p - q).abs().flatten() for p, q in zip(a.values(), b.values(), strict=True)])
    assert (diffs > 1e-5).float().mean() < 1e-4 and diffs.max() < 2e-3, (int((diffs > 1e-5).sum()), float(diffs.max()))
