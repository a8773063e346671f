"""Fault injection on the real pipelines: SIGKILL inside a checkpoint write (smoke, SFT, GRPO, latent SFT,
slate), and on the smoke run through the one loop: corrupted checkpoints,
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


# --------------------------------------------------------------------------- SIGKILL inside a checkpoint write

#: a process that runs ``rl4rec ARGV`` and SIGKILLs itself inside its Nth write of ``last.pt``: the
#: new checkpoint is fully written to its temp file, the rename has not happened
_KILL_IN_WRITE = """
import os, signal, sys
from rl4rec.cli import main
real, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith("last.pt"):
        seen[0] += 1
        if seen[0] == {at}:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.exit(main({argv!r}))
"""
_TIMING = ("time", "wall", "train_s", "_s", "per_s", "run_dir", "devices", "perf/", "throughput", "elapsed")


def _same_numbers(a, b, path=""):
    """Every result value equal (timings and paths left out), recursively."""
    if isinstance(a, dict):
        keys = {k for k in a if not any(t in k for t in _TIMING)}
        assert keys == {k for k in b if not any(t in k for t in _TIMING)}, path
        for k in keys:
            _same_numbers(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and a and isinstance(a[0], (dict, list)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_numbers(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def _sft_run(root, synthetic_dir):
    from rl4rec.cli import main

    assert main(["genrec", "sft", f"dataset={synthetic_dir}", f"runs_dir={root}", "run_name=start", *_SFT]) == 0
    return next(root.glob("*/start"))


_SFT = ["threads=1", "progress=false", "tracking.backends=[]", "tokenizer.vocab_size=400", "prompt.preamble=false", "tasks.seq_title2sid=0",
        "tasks.sid2title=0", "max_steps=24", "batch_size=16", "eval_every=12", "save_every=4", "eval_rows=30", "eval_beams=5",
        "select_metric=hr@1", "test_beams=5", "ks=[1,5]"]
_PIPELINES = {
    "smoke": lambda d, s: ["smoke", "steps=60", "eval_every=20", "save_every=10", "threads=1", "progress=false", "tracking.backends=[]"],
    "genrec.sft": lambda d, s: ["genrec", "sft", f"dataset={d}", *_SFT],
    "genrec.grpo": lambda d, s: ["genrec", "grpo", f"init_from={s}", "threads=1", "progress=false", "tracking.backends=[]", "tasks.seq_title2sid=0",
                                 "tasks.title2sid=0", "group_size=4", "prompts_per_step=4", "rollout_batch=4", "micro_batch=4", "max_steps=6",
                                 "eval_every=3", "save_every=1", "eval_rows=30", "eval_beams=5", "select_metric=hr@1", "test_beams=5", "ks=[1,5]",
                                 "lr=1e-4", "warmup_ratio=0"],
    "genrec.latent_sft": lambda d, s: ["genrec", "latent-sft", f"dataset={d}", "threads=1", "progress=false", "tracking.backends=[]",
                                       "tokenizer.vocab_size=400", "train_recipe=file", "max_steps=12", "eval_every=6", "save_every=3",
                                       "batch_size=8", "eval.rows=16", "eval.beams=5", "select_metric=ndcg@5"],
    "slate.train": lambda d, s: ["slate", "train", "agent=sac", "ranker=topk_ideal", "steps=30", "random_steps=10", "eval_every=15",
                                 "save_every=5", "batch_size=5", "threads=1", "progress=false", "tracking.backends=[]", "val_users=50",
                                 "test_users=100"],
}


@pytest.mark.parametrize("pipeline", list(_PIPELINES))
def test_sigkill_inside_a_checkpoint_write_then_resume_gives_the_same_result(pipeline, tmp_path, synthetic_dir, request):
    """Killed inside its 3rd ``last.pt`` write, a run keeps the 2nd checkpoint loadable, and resumed
    it ends with the numbers of an uninterrupted run (torn temp files removed on resume)."""
    from rl4rec.cli import main

    if pipeline.startswith("slate"):
        request.getfixturevalue("shared_data")  # the released simulator embeddings
    sft = _sft_run(tmp_path / "start", synthetic_dir) if pipeline == "genrec.grpo" else None
    argv = _PIPELINES[pipeline](synthetic_dir, sft)
    assert main([*argv, f"runs_dir={tmp_path / 'ref'}"]) == 0
    reference = json.loads(next((tmp_path / "ref").glob("*/*/test_results.json")).read_text())

    killed = [*argv, f"runs_dir={tmp_path / 'k'}"]
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_WRITE.format(at=3, argv=killed)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    run_dir = next((tmp_path / "k").glob("*/*"))
    assert read_status(run_dir)["status"] == "killed" and not (run_dir / "test_results.json").exists()
    first = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # the 2nd write, whole
    torn = list(run_dir.glob("checkpoints/.last.pt.tmp-*"))
    assert first["step"] > 0 and len(torn) == 1

    assert main([*killed, "resume=true"]) == 0
    assert not list(run_dir.glob("checkpoints/.last.pt.tmp-*"))
    _same_numbers(json.loads((run_dir / "test_results.json").read_text()), reference)


def _nan_reward_at(monkeypatch, step: int):
    """The rule reward turns NaN for one completion on its ``step``-th call."""
    from rl4rec.genrec.grpo import rewards

    real, calls = rewards.REWARDS["rule"], {"n": 0}

    def rule(rollouts, ctx):
        calls["n"] += 1
        r = real(rollouts, ctx)
        return torch.where(torch.arange(r.numel()) == 0, float("nan"), r) if calls["n"] == step else r

    monkeypatch.setitem(rewards.REWARDS, "rule", rule)


def test_a_nan_reward_stops_grpo_with_its_last_good_checkpoint_or_is_skipped(tmp_path, synthetic_dir, monkeypatch, caplog):
    """GRPO (rule reward, checkpoint every step): a NaN reward at step 4 stops the run with the
    step-3 checkpoint finite, naming the reward in the log; with skip_nonfinite=true the run ends
    and counts the skipped update."""
    from rl4rec.cli import main

    sft = _sft_run(tmp_path / "start", synthetic_dir)
    argv = [a for a in _PIPELINES["genrec.grpo"](synthetic_dir, sft) if a != "save_every=1"] + ["save_every=1", "rewards={rule: 1.0}"]
    _nan_reward_at(monkeypatch, 4)
    with caplog.at_level("WARNING"):
        assert main([*argv, f"runs_dir={tmp_path / 'a'}"]) == 2
    assert "reward 'rule' is NaN/inf for 1 of 16 completions" in caplog.text
    run_dir = next((tmp_path / "a").glob("*/*"))
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 3 and read_status(run_dir)["status"] == "failed"
    assert all(torch.isfinite(v).all() for v in state["task"]["policy"].values() if v.is_floating_point())
    _nan_reward_at(monkeypatch, 4)
    assert main([*argv, f"runs_dir={tmp_path / 'b'}", "skip_nonfinite=true"]) == 0
    rows = [json.loads(x) for x in next((tmp_path / "b").glob("*/*/metrics.jsonl")).read_text().splitlines()]
    assert [r["train/skipped_steps"] for r in rows if "train/skipped_steps" in r][-1] == 1.0
