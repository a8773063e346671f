"""The ``rl4rec`` command: help, config errors as exit code 2, runs list/show."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

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


def _training_commands():
    from rl4rec.registry import PIPELINES

    return [p.command for p in PIPELINES if p.trains]


@pytest.mark.parametrize("command", _training_commands(), ids=" ".join)
def test_device_cuda_without_a_gpu_is_one_line_naming_the_key(command, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    assert main([*command, "device=cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device=cuda" in err, err


def test_every_pipeline_has_a_command_a_config_and_a_sweep_task():
    from rl4rec.registry import PIPELINES, get_task, sweep_tasks

    parser_commands = set()
    for p in PIPELINES:
        assert dataclasses.is_dataclass(p.config_class())
        parser_commands.add(p.command)
    assert {"genrec.grpo", "genrec.grpo_text", "genrec.latent_sft", "genrec.latent_grpo", "slate.train", "genrec.sft"} <= set(sweep_tasks())
    with pytest.raises(KeyError, match="evaluation"):
        get_task("genrec.eval")
    for command in parser_commands:  # each is reachable from the CLI
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0


def test_expected_errors_are_one_line_and_exit_2(capsys, tmp_path):
    """A run that exists (without resume=true), a missing config file and a bad metrics log end in
    one line on stderr, not a traceback, for any command."""
    base = ["smoke", f"runs_dir={tmp_path}", "steps=4", "eval_every=2", "threads=1", "progress=false", "tracking.backends=[]"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rl4rec: error:") and "resume=true" in err and "Traceback" not in err
    assert main(["smoke", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yaml" in err
    run = next((tmp_path / "smoke").iterdir())
    (run / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    assert main(["runs", "show", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.jsonl:2" in err
