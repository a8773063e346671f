"""``rl4rec slate`` commands through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl4rec.cli import main


@pytest.fixture(autouse=True)
def _data(shared_data, monkeypatch):
    monkeypatch.setenv("RL4REC_SHARED_DATA", str(shared_data))


def test_eval_policy_json(capsys):
    rc = main(["slate", "eval-policy", "--env", "focused_topdown", "--policy", "sto", "--users", "40", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    stats = json.loads(out)  # exactly one JSON object on stdout
    assert set(stats) == {"env", "mode", "policy", "mean", "std", "sem", "n"} and stats["n"] == 40
    assert abs(stats["sem"] - stats["std"] / 40**0.5) < 1e-9
    assert 60 < stats["mean"] < 160


def test_eval_policy_text_fixed_mode_and_overrides(capsys):
    args = ["slate", "eval-policy", "--env", "diffuse_divpen", "--policy", "eps_oracle", "--epsilon", "1.0", "--users", "30", "--mode", "fixed", "sim.fix_divpen_threshold=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "diffuse_divpen (fixed) eps_oracle" in out and "n = 30" in out


def test_bad_env_and_override_exit_2(capsys):
    assert main(["slate", "eval-policy", "--env", "focused_topdwn", "--policy", "random"]) == 2
    assert "did you mean focused_topdown" in capsys.readouterr().err
    assert main(["slate", "eval-policy", "--policy", "random", "sim.fix_divpen=true"]) == 2
    assert "fix_divpen_threshold" in capsys.readouterr().err


def test_generate_logs_and_embeddings(tmp_path, capsys):
    out = tmp_path / "logs"
    args = ["slate", "generate-logs", "--env", "focused_mix", "--sessions", "20", "--out", str(out), "progress=false"]
    assert main(args) == 0
    assert "wrote 20 sessions of focused_mix" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["env"] == "focused_mix" and meta["resolved"]["click_model"] == "mixPBM"
    emb = tmp_path / "cat.npy"
    assert main(["slate", "generate-embeddings", "--out", str(emb), "--peak-power", "2", "--seed", "4"]) == 0
    assert "peak_power=2.0" in capsys.readouterr().out
    arr = np.load(emb)
    assert arr.shape == (1000, 20) and np.allclose(np.linalg.norm(arr, axis=1), 1, atol=1e-5)
    rc = main(["slate", "eval-policy", "--policy", "random", "--users", "10", "--embeddings", str(emb), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["n"] == 10
