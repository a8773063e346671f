"""Under CI=true a missing shared data folder fails the run; a user's checkout skips with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_TEST = "tests/slate/test_simulator.py::test_released_catalogues_initial_slates_and_topics"


def _pytest(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(RL4REC_SHARED_DATA=str(tmp_path / "no-data"), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", DATA_TEST],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


def test_missing_data_skips_with_the_reason_outside_ci(tmp_path):
    out = _pytest(tmp_path)
    assert out.returncode == 0 and "1 skipped" in out.stdout and "no-data not found" in out.stdout, out.stdout


def test_missing_data_fails_under_ci(tmp_path):
    out = _pytest(tmp_path, CI="true")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "CI=true but the shared data folder" in text and "passed" not in text, text
