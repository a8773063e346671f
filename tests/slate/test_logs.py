"""Logged data: generation statistics, save/load round trip, validation of corrupted datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl4rec.slate.env.config import variant_config
from rl4rec.slate.logs import generate_logs, load_logs


@pytest.fixture
def dataset(shared_data, tmp_path):
    cfg = variant_config("focused_topdown", catalogue=str(shared_data / "slate" / "item_embeddings_focused.npy"))
    return generate_logs(cfg, 300, tmp_path / "logs", batch_size=128, progress=False)


def test_round_trip_and_contents(dataset):
    data = load_logs(dataset.path, env="focused_topdown", mode="faithful")
    assert data.slates.shape == (300, 100, 10) and data.slates.dtype == np.int16
    assert data.clicks.shape == (300, 100, 10) and data.clicks.dtype == np.uint8
    np.testing.assert_array_equal(data.slates, dataset.slates)
    np.testing.assert_array_equal(data.clicks, dataset.clicks)
    assert data.slates.min() >= 0  # slates are stored after oracle fill
    meta = data.meta
    assert meta["sessions"] == 300 and meta["policy"]["epsilon"] == 0.5 and meta["policy"]["seed"] == 2754851
    assert data.config() == variant_config("focused_topdown", catalogue=meta["config"]["catalogue"])
    # between random (0.34) and oracle (~1.0) clicks per turn; official eps=0.5 logs: 0.963
    assert 0.85 < meta["stats"]["clicks_per_turn"] < 1.08
    rates = meta["stats"]["click_rate_by_slot"]
    assert rates == sorted(rates, reverse=True)  # TopDown: clicks fall with the slot


def test_validation_failures(dataset):
    with pytest.raises(ValueError, match="focused_topdown.*not the requested 'diffuse_mix'"):
        load_logs(dataset.path, env="diffuse_mix")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_logs(dataset.config(), 10, dataset.path, progress=False)
    meta_path = dataset.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sessions": 301}))
    with pytest.raises(ValueError, match="sidecar says"):
        load_logs(dataset.path)
    meta_path.write_text(json.dumps({**meta, "stats": {**meta["stats"], "total_clicks": 1}}))
    with pytest.raises(ValueError, match="clicks in clicks.npy"):
        load_logs(dataset.path)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "env"}))
    with pytest.raises(ValueError, match="lacks env"):
        load_logs(dataset.path)
    meta_path.write_text(meta_path.read_text()[:40])
    with pytest.raises(ValueError, match="not valid JSON"):
        load_logs(dataset.path)
    meta_path.write_text(json.dumps(meta))
    slates = dataset.slates.copy()
    slates[3, 4, 5] = 1000
    np.save(dataset.path / "slates.npy", slates)
    with pytest.raises(ValueError, match="outside"):
        load_logs(dataset.path)


def test_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate-logs"):
        load_logs(tmp_path)
