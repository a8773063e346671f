"""Fault injection on a real pipeline (the smoke run through the one loop): corrupted checkpoints,
a full disk during a save, two processes on one run, NaN losses."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from rl4rec.config import apply_overrides
from rl4rec.errors import InputError, NonFiniteError
from rl4rec.runs import RunExistsError, load_checkpoint, read_status, run_dir_for
from rl4rec.smoke import SmokeConfig, train_smoke


def _cfg(root, *extra):
    base = [f"runs_dir={root}", "steps=120", "eval_every=20", "save_every=10", "keep_every=50", "threads=1", "progress=false", "tracking.backends=[]"]
    return apply_overrides(SmokeConfig, {}, [*base, *extra])


def _numbers(r):
    return {k: r[k] for k in ("eval/mse", "eval/best_mse", "steps", "best_step")}


def test_an_unreadable_last_checkpoint_falls_back_to_the_newest_step_n(tmp_path, caplog):
    reference = train_smoke(_cfg(tmp_path / "ref"))
    assert train_smoke(_cfg(tmp_path / "cut", "stop_at_step=60")) is None  # stopped: last.pt at 60, step_50.pt kept
    run_dir = run_dir_for(_cfg(tmp_path / "cut", "stop_at_step=60"))
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:200])  # truncated mid-file
    with pytest.raises(InputError, match="unreadable checkpoint"):
        load_checkpoint(last)
    with caplog.at_level("WARNING"):
        resumed = train_smoke(_cfg(tmp_path / "cut", "resume=true"))
    assert "resuming from step_50.pt instead of the unreadable last.pt" in caplog.text
    assert _numbers(resumed) == _numbers(reference)  # steps 51..120 redone: the same end


def test_no_readable_checkpoint_is_one_clear_error(tmp_path):
    cfg = _cfg(tmp_path, "stop_at_step=30")
    train_smoke(cfg)
    ckpts = run_dir_for(cfg) / "checkpoints"
    for path in ckpts.glob("*.pt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="no readable step_N checkpoint to fall back to"):
        train_smoke(_cfg(tmp_path, "stop_at_step=30", "resume=true"))


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    real_save, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the fourth checkpoint write finds the disk full half-way
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match="No space left"):
        train_smoke(cfg)
    run_dir = run_dir_for(cfg)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # the previous one, whole
    assert state["step"] in (10, 20, 30)
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")], "temp files left behind"
    assert read_status(run_dir)["status"] == "failed"
    monkeypatch.setattr(torch, "save", real_save)
    assert train_smoke(_cfg(tmp_path, "resume=true"))["steps"] == 120  # and it resumes from there


def test_a_second_process_refuses_a_running_run(tmp_path):
    args = [f"runs_dir={tmp_path}", "steps=120", "eval_every=20", "save_every=10", "keep_every=50", "threads=1", "progress=false",
            "tracking.backends=[]", "step_sleep=0.05"]
    proc = subprocess.Popen([sys.executable, "-m", "rl4rec.cli", "smoke", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        run_dir = run_dir_for(_cfg(tmp_path, "step_sleep=0.05"))
        deadline = time.time() + 60
        while time.time() < deadline and read_status(run_dir)["status"] != "running":
            time.sleep(0.05)
        with pytest.raises(RunExistsError, match="is running"):
            train_smoke(_cfg(tmp_path, "step_sleep=0.05", "resume=true"))  # even with resume=true
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def _nan_at(monkeypatch, call: int):
    real, calls = torch.nn.functional.mse_loss, {"n": 0}

    def mse(a, b, *args, **kwargs):
        calls["n"] += 1
        out = real(a, b, *args, **kwargs)
        return out * float("nan") if calls["n"] == call else out

    monkeypatch.setattr(torch.nn.functional, "mse_loss", mse)


def test_a_nan_loss_stops_the_run_with_its_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    _nan_at(monkeypatch, 35)  # train steps call it once each; validations at 20 once more: step 34
    with pytest.raises(NonFiniteError, match="non-finite"):
        train_smoke(cfg)
    run_dir = run_dir_for(cfg)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 30 and all(torch.isfinite(v).all() for v in state["task"]["model"].values())
    assert read_status(run_dir)["status"] == "failed"


def test_skip_nonfinite_skips_the_update_and_counts_it(tmp_path, monkeypatch):
    _nan_at(monkeypatch, 35)
    result = train_smoke(_cfg(tmp_path, "skip_nonfinite=true"))
    assert result["steps"] == 120 and result["eval/mse"] < 0.05
    lines = [json.loads(line) for line in (run_dir_for(_cfg(tmp_path, "skip_nonfinite=true")) / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["train/skipped_steps"] for r in lines if "train/skipped_steps" in r]
    assert skipped[-1] == 1.0 and skipped[0] == 0.0
