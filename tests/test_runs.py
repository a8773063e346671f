"""Durable runs: kill -9 and resume, atomic checkpoints, TensorBoard read-back, determinism."""

from __future__ import annotations

import json
import os
import pickle
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rl4rec.config import apply_overrides
from rl4rec.errors import InputError
from rl4rec.runs import Run, RunExistsError, atomic_torch_save, list_runs, load_checkpoint, read_status, run_dir_for
from rl4rec.smoke import SmokeConfig, train_smoke
from rl4rec.tracking import read_metrics


def _cfg(tmp_path: Path, *extra: str) -> SmokeConfig:
    return apply_overrides(
        SmokeConfig,
        {},
        [f"runs_dir={tmp_path}", "steps=120", "eval_every=20", "save_every=10", "threads=1", "progress=false", *extra],
    )


def _metric_lines(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time",) and not k.startswith("perf/")} for r in read_metrics(run_dir / "metrics.jsonl")]


def _numbers(result: dict) -> dict:
    """What a smoke run computes (not where or how long)."""
    return {k: result[k] for k in ("eval/mse", "eval/best_mse", "steps", "best_step", "best_valid", "early_stopped")}


def test_run_directory_layout(tmp_path):
    cfg = _cfg(tmp_path, "seed=1")
    train_smoke(cfg)
    run_dir = tmp_path / "smoke" / "mlp_steps120_eval-every20_save-every10_seed1"
    assert run_dir.is_dir(), list((tmp_path / "smoke").iterdir())
    for name in ("config.yaml", "meta.json", "status.json", "metrics.jsonl", "run.log", "test_results.json"):
        assert (run_dir / name).exists(), name
    ckpts = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert {"last.pt", "best.pt", "step_100.pt"} <= ckpts
    assert not any(name.startswith(".") for name in ckpts), "no temp files left behind"
    assert read_status(run_dir)["status"] == "finished"
    assert "eval/mse" in (run_dir / "run.log").read_text()
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["step"] == 120


def test_same_seed_same_metrics_different_seed_differs(tmp_path):
    a = train_smoke(_cfg(tmp_path / "a", "seed=7"))
    b = train_smoke(_cfg(tmp_path / "b", "seed=7"))
    c = train_smoke(_cfg(tmp_path / "c", "seed=8"))
    assert _numbers(a) == _numbers(b)
    assert _numbers(a) != _numbers(c)
    la = _metric_lines(tmp_path / "a" / "smoke" / os.listdir(tmp_path / "a" / "smoke")[0])
    lb = _metric_lines(tmp_path / "b" / "smoke" / os.listdir(tmp_path / "b" / "smoke")[0])
    assert la == lb


def test_existing_run_needs_resume(tmp_path):
    cfg = _cfg(tmp_path, "steps=20")
    first = train_smoke(cfg)
    with pytest.raises(RunExistsError, match="resume=true"):
        train_smoke(cfg)
    again = train_smoke(_cfg(tmp_path, "steps=20", "resume=true"))  # finished run: nothing to redo
    assert again["steps"] == 20 and again["eval/mse"] == pytest.approx(first["eval/mse"], abs=0)


def _spawn(tmp_path: Path, *extra: str) -> subprocess.Popen:
    args = [f"runs_dir={tmp_path}", "steps=120", "eval_every=20", "save_every=10", "threads=1", "progress=false", "seed=3", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "rl4rec.cli", "smoke", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    reference = train_smoke(_cfg(tmp_path / "ref", "seed=3", "step_sleep=0.0"))

    killed_root = tmp_path / "killed"
    proc = _spawn(killed_root, "step_sleep=0.02")
    run_dir = run_dir_for(_cfg(killed_root, "seed=3", "step_sleep=0.02"))
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a few checkpoints exist, then kill -9 mid-training
        last = run_dir / "checkpoints" / "last.pt"
        if last.exists() and load_checkpoint(last)["step"] >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_status(run_dir)["status"] == "killed"
    killed_at = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert 40 <= killed_at < 120

    proc = _spawn(killed_root, "step_sleep=0.02", "resume=true")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()
    assert f"resuming {run_dir.name} from step {killed_at}" in out.decode()
    resumed = json.loads((run_dir / "test_results.json").read_text())
    assert _numbers(resumed) == _numbers(reference)

    ref_dir = next((tmp_path / "ref" / "smoke").iterdir())
    assert _metric_lines(run_dir) == _metric_lines(ref_dir), "metrics.jsonl has no duplicated or missing steps"
    assert [r["name"] for r in list_runs(killed_root)] == [run_dir.name]
    assert read_status(run_dir)["status"] == "finished"


def test_sigterm_stops_cleanly(tmp_path):
    proc = _spawn(tmp_path, "step_sleep=0.02")
    run_dir = run_dir_for(_cfg(tmp_path, "seed=3", "step_sleep=0.02"))
    deadline = time.time() + 60
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert read_status(run_dir)["status"] == "stopped"


def test_interrupted_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)

    def crash(src, dst):
        raise OSError("simulated crash between temp file and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_torch_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))


def test_checkpoints_load_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(InputError, match="unreadable checkpoint.*Weights only load failed") as err:
        load_checkpoint(path)
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)  # refused by weights_only, never executed


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_smoke(_cfg(tmp_path, "steps=40"))
    tb_dir = next((tmp_path / "smoke").iterdir()) / "tensorboard"
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "eval/mse"} <= set(tags)
    steps = [e.step for e in acc.Scalars("eval/mse")]
    assert steps == [20, 40]
    jsonl = [r["eval/mse"] for r in read_metrics(tb_dir.parent / "metrics.jsonl") if "eval/mse" in r]
    assert [e.value for e in acc.Scalars("eval/mse")] == pytest.approx(jsonl, rel=1e-6)


def test_metric_keys_need_a_namespace(tmp_path):
    with Run(_cfg(tmp_path, "steps=1")) as run:
        with pytest.raises(ValueError, match="train/loss"):
            run.log_metrics({"loss": 1.0}, 1)
    assert read_status(run.dir)["status"] == "finished"


def test_failed_run_is_marked(tmp_path):
    with pytest.raises(RuntimeError):
        with Run(_cfg(tmp_path, "steps=1")) as run:
            raise RuntimeError("boom")
    status = read_status(run.dir)
    assert status["status"] == "failed" and "boom" in status["error"]


def test_keep_freed_memory_is_idempotent_and_can_be_disabled(monkeypatch):
    import rl4rec.allocator as allocator

    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setenv("RL4REC_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False and allocator._done is False
    monkeypatch.delenv("RL4REC_KEEP_FREED_MEMORY")
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first  # a second call changes nothing
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert first is True
