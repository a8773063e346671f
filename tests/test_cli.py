"""The ``rl4rec`` command: help, config errors as exit code 2, runs list/show."""

from __future__ import annotations

import subprocess
import sys

from rl4rec.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("runs", "smoke", "config"):
        assert cmd in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "rl4rec.cli", "--help"], capture_output=True, text=True, check=True)
    assert "usage: rl4rec" in out.stdout


def test_config_error_is_exit_2_with_message(capsys, tmp_path):
    assert main(["smoke", f"runs_dir={tmp_path}", "stpes=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'stpes'" in err and "did you mean steps" in err


def test_runs_list_and_show(capsys, tmp_path):
    assert main(["smoke", f"runs_dir={tmp_path}", "steps=20", "eval_every=10", "progress=false", "threads=1"]) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "smoke/mlp_steps20_eval-every10_seed0" in out and "finished" in out and "eval/mse=" in out
    assert main(["runs", "show", "mlp_steps20_eval-every10_seed0", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "steps: 20" in out and "eval/mse" in out


def test_config_command_prints_every_key(capsys):
    assert main(["config", "rl4rec.smoke.SmokeConfig"]) == 0
    out = capsys.readouterr().out
    assert "tracking.backends" in out and "step_sleep" in out
