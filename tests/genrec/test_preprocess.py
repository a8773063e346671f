"""Raw Amazon-2018-style JSON lines -> a category folder (spec genrec.md §1.1), on a generated file."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import numpy as np
import pytest

from rl4rec.config import apply_overrides
from rl4rec.genrec.data import load_dataset
from rl4rec.genrec.data.preprocess import PreprocessConfig, clean_title, preprocess_amazon

DAY = 86400
T2017 = 1483228800  # 2017-01-01


def _raw_files(tmp_path):
    rng = np.random.default_rng(0)
    meta = [{"asin": f"G{i:03d}", "title": f"Good Item {i}", "description": [f"About item {i}."], "brand": "B"} for i in range(20)]
    meta[0]["title"] = "&quot;Best&quot; Glue &amp; Tape"
    bad = [
        {"asin": "X_none"},
        {"asin": "X_span", "title": 'Nice <span id="x">thing</span>'},
        {"asin": "X_short", "title": "X"},
        {"asin": "X_long", "title": " ".join(["word"] * 21)},
    ]
    reviews = []
    for u in range(30):
        n = int(rng.integers(4, 16))  # some users longer than the 10-item window
        days = np.sort(rng.integers(0, 500, n))
        for d in days:
            reviews.append({"reviewerID": f"U{u:02d}", "asin": f"G{int(rng.integers(20)):03d}", "unixReviewTime": int(T2017 + d * DAY)})
        reviews.append({"reviewerID": f"U{u:02d}", "asin": bad[u % 4]["asin"], "unixReviewTime": T2017 + 5 * DAY})
    reviews.append({"reviewerID": "U_old", "asin": "G001", "unixReviewTime": T2017 - 400 * DAY})  # before the window
    reviews += [{"reviewerID": "U_rare", "asin": "G002", "unixReviewTime": T2017 + DAY}]  # fails the 3-core
    rpath, mpath = tmp_path / "reviews.json.gz", tmp_path / "meta.json"
    with gzip.open(rpath, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in reviews) + "\n")
    mpath.write_text("\n".join(json.dumps(m) for m in meta + bad) + "\n")
    return rpath, mpath


def test_clean_title_rules():
    assert clean_title("&quot;Best&quot; Glue &amp; Tape") == 'Best" Glue & Tape'
    assert clean_title('  "Quoted"  ') == "Quoted"
    for bad in (None, "", "X", 'a <span id="1">', " ".join(["w"] * 21)):
        assert clean_title(bad) is None


def test_preprocess_generated_raw_file(tmp_path):
    rpath, mpath = _raw_files(tmp_path)
    cfg = apply_overrides(PreprocessConfig, {}, ["name=Toy", "start=2017-01-01", "end=2018-06-01", "k_core=3", "min_items=0"])
    report = preprocess_amazon(rpath, mpath, tmp_path / "Toy", cfg)
    ds = load_dataset(tmp_path / "Toy")
    assert ds.train_recipe == "file"
    cat = ds.catalog
    assert all(t.startswith("Good Item") for t in cat.titles[1:]) and cat.titles[0] == 'Best" Glue & Tape'
    assert cat.description(3) == "About item 3."
    rows = ds.train + ds.valid + ds.test
    n = len(rows)
    assert report["samples"] == n and (len(ds.train), len(ds.valid)) == (int(0.8 * n), int(0.9 * n) - int(0.8 * n))
    # global chronological split
    assert max(e.timestamp for e in ds.train) <= min(e.timestamp for e in ds.valid)
    assert max(e.timestamp for e in ds.valid) <= min(e.timestamp for e in ds.test)
    assert max(len(e.history) for e in rows) == 10
    # per user: consecutive samples extend the window by the previous target (across splits)
    by_user = defaultdict(list)
    for e in rows:
        by_user[e.user_id].append(e)
    for seq in by_user.values():  # rows are in global (target-time) order already
        for a, b in zip(seq, seq[1:], strict=False):
            assert b.history == (a.history + (a.target_item_id,))[-10:]
    # the 3-core holds on the interactions: first history item + every target, per user and item
    items = defaultdict(int)
    for seq in by_user.values():
        assert len(seq) + 1 >= 3
        for i in (seq[0].history[0], *[e.target_item_id for e in seq]):
            items[i] += 1
    assert min(items.values()) >= 3
    assert report["users"] == len(by_user) == 30  # U_old is outside the window, U_rare fails the 3-core
    assert report["items_with_valid_title"] == 20


def test_window_moves_back_when_too_few_items(tmp_path):
    rpath, mpath = _raw_files(tmp_path)
    cfg = apply_overrides(
        PreprocessConfig, {}, ["name=Toy", "start=2018-05-01", "end=2018-06-01", "k_core=1", "min_items=15", "earliest_year=2016"]
    )
    report = preprocess_amazon(rpath, mpath, tmp_path / "Toy", cfg)
    assert report["window"][0] < "2018" and report["items"] >= 15
    with pytest.raises(ValueError, match="no interactions"):
        bad = apply_overrides(PreprocessConfig, {}, ["start=2030-01-01", "end=2030-02-01", "min_items=0"])
        preprocess_amazon(rpath, mpath, tmp_path / "Empty", bad)
