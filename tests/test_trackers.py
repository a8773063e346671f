"""W&B and SwanLab adapters run offline (no network) and receive the run's name and metrics."""

from __future__ import annotations

import os
import socket

import pytest

from rl4rec.config import apply_overrides
from rl4rec.smoke import SmokeConfig, train_smoke


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a non-local connection fails the test."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            raise AssertionError(f"network call to {address} during an offline run")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for var in ("WANDB_API_KEY", "WANDB_MODE", "SWANLAB_API_KEY", "SWANLAB_MODE"):
        monkeypatch.delenv(var, raising=False)


def test_wandb_offline(tmp_path, no_network):
    pytest.importorskip("wandb", reason="install rl4rec[wandb]")
    cfg = apply_overrides(
        SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=10", "eval_every=5", "progress=false", "tracking.backends=[wandb]", "tags=[a, b]"]
    )
    train_smoke(cfg)
    run_dir = next((tmp_path / "smoke").iterdir())
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline, os.listdir(run_dir / "wandb")
    assert any(p.suffix == ".wandb" for p in offline[0].iterdir())


def test_swanlab_offline(tmp_path, no_network):
    pytest.importorskip("swanlab", reason="install rl4rec[swanlab]")
    cfg = apply_overrides(
        SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=10", "eval_every=5", "progress=false", "tracking.backends=[swanlab]"]
    )
    train_smoke(cfg)
    run_dir = next((tmp_path / "smoke").iterdir())
    assert any((run_dir / "swanlab").rglob("*")), "swanlab wrote its local logs"


def test_missing_tracker_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail as if not installed
    cfg = apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=2", "progress=false", "tracking.backends=[wandb]"])
    with pytest.raises(RuntimeError, match=r"pip install 'rl4rec\[wandb\]'"):
        train_smoke(cfg)


def test_read_metrics_ignores_only_a_torn_last_line(tmp_path):
    from rl4rec.errors import InputError
    from rl4rec.tracking import read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n{"step": 3, "a"')  # killed mid-write
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a\n{"step": 3, "a": 3.0}\n')  # a bad line in the middle
    with pytest.raises(InputError, match=r"metrics.jsonl:2: not a JSON metrics record"):
        read_metrics(path)
    path.write_text('{"step": 1}\n[1, 2]\n{"step": 3}\n')  # valid JSON but not a record
    with pytest.raises(InputError, match=r":2: "):
        read_metrics(path)
