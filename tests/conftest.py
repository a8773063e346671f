"""Shared fixtures: repository paths, the shared data folder, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RL4REC_SHARED_DATA", REPO.parent / "shared" / "data"))


def in_ci() -> bool:
    """``CI=true`` (as CI services set it): missing data is then a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_data(message: str) -> None:
    """Skip a test whose data is absent, with the reason; under CI fail instead, so a CI run cannot
    pass with the data tests silently skipped."""
    if in_ci():
        pytest.fail(f"CI=true and {message}: the data tests would be skipped (set RL4REC_SHARED_DATA)", pytrace=False)
    pytest.skip(message)


def pytest_sessionstart(session):
    if in_ci() and not SHARED_DATA.is_dir():
        pytest.exit(f"CI=true but the shared data folder {SHARED_DATA} is missing: the data tests would be skipped "
                    "(set RL4REC_SHARED_DATA, or unset CI for a checkout without the data)", returncode=1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; tests needing it skip when it is absent (fail under CI)."""
    if not SHARED_DATA.is_dir():
        missing_data(f"shared data folder {SHARED_DATA} not found (set RL4REC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A 50-item synthetic category (train/valid/test CSVs, info, item and index files)."""
    from rl4rec.genrec.data.synthetic import SyntheticConfig, write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), SyntheticConfig())


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
