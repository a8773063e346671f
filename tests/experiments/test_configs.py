"""Every sweep file under configs/ parses, names valid keys and expands to distinct runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rl4rec.experiments.sweep import expand, load_sweep

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SWEEPS = sorted(p for p in CONFIGS.rglob("*.yaml") if "sweep" in p.name)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_sweep_expands(path):
    sweep, base = load_sweep(path)
    members = expand(sweep, base)
    assert members and len({m.name for m in members}) == len(members)
    assert max(len(m.name) for m in members) <= 80  # names read at a glance (the laptop Table 2 included)
    methods = {m.method for m in members}
    assert len(methods) == max(len(sweep.methods), 1)
