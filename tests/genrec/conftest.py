"""Fixtures of the genrec tests: a synthetic category written once, the shared Amazon folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from rl4rec.genrec.data.synthetic import SyntheticConfig, write_synthetic_dataset
from tests.conftest import missing_data


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A 50-item synthetic category (train/valid/test CSVs, info, item and index files)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), SyntheticConfig())


@pytest.fixture(scope="session")
def amazon(shared_data) -> Path:
    path = shared_data / "amazon"
    if not (path / "Industrial_and_Scientific").is_dir():
        missing_data(f"{path}/Industrial_and_Scientific not found")
    return path
