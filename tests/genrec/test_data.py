"""Catalog, CSV loading and validation, and the honest train rebuild against the data READMEs."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter

import pytest

from rl4rec.cli import main
from rl4rec.genrec.data import (
    DataFormatError,
    ItemCatalog,
    load_dataset,
    parse_description,
    parse_recipe,
    read_examples,
    rebuild_train,
    write_examples,
)
from rl4rec.genrec.data.examples import pad_histories
from tests.conftest import missing_data

IND = "Industrial_and_Scientific"
CDS = "CDs_and_Vinyl"


@pytest.fixture(scope="module")
def industrial(amazon):
    return load_dataset(IND, data_dir=amazon)


@pytest.fixture(scope="module")
def cds(amazon):
    if not (amazon / CDS).is_dir():
        missing_data(f"{amazon / CDS} not found")
    return load_dataset(amazon / CDS)


def test_parse_description_fallbacks():
    assert parse_description("['p1', 'p2']") == "p1 p2"
    assert parse_description("") == "" and parse_description("['', ' ']") == ""
    # not a valid literal (unescaped quote): strip the brackets, split on the separators
    assert parse_description("['it's here', 'second']") == "it's here second"
    assert parse_description("plain text") == "plain text"


def test_industrial_catalog_facts(industrial):
    cat = industrial.catalog
    assert len(cat) == 3686 and len(set(cat.titles)) == 3646
    col = cat.sids.collisions()
    assert (col["distinct_sids"], col["colliding_groups"], col["items_in_colliding_groups"], col["largest_group"]) == (3670, 15, 31, 3)
    assert len(cat.sids.vocabulary()) == 560
    assert [u["codes_used"] for u in cat.sids.usage()] == [48, 256, 256]
    assert cat.sid(0) == "<a_236><b_231><c_226>" and cat.items_of_sid("<a_236><b_231><c_226>") == [0]
    # 229 empty descriptions + 3 that hold only empty paragraphs; the 16 bad literals are parsed
    assert sum(1 for d in cat.descriptions if not d) == 232
    assert not any(d.startswith("[") for d in cat.descriptions)
    assert all(cat.text(i).endswith(".") and '"' not in cat.text(i) for i in range(0, 3686, 97))


def test_industrial_splits_and_r1_rebuild_counts(industrial):
    ds = industrial
    assert ds.train_recipe == "r1"
    assert (len(ds.valid), len({e.user_id for e in ds.valid})) == (4532, 2011)
    assert (len(ds.test), len({e.user_id for e in ds.test})) == (4533, 1987)
    lengths = Counter(len(e.history) for e in ds.valid)
    assert [lengths[k] for k in range(1, 11)] == [393, 531, 763, 947, 553, 392, 229, 171, 110, 443]
    train = ds.train
    assert len(train) == 6424
    assert len({(e.history, e.target_item_id) for e in train}) == 6309
    assert len({i for e in train for i in (*e.history, e.target_item_id)}) == 2767
    assert len({e.target_item_id for e in train}) == 2515
    assert max(len(e.history) for e in train) == 9
    # 5,065 samples come from windows shorter than 10 (exact copies of original train rows)
    short = {e.source for e in ds.valid if len(e.history) < 10}
    assert sum(1 for e in train if e.source.split(":", 1)[1].rsplit("[", 1)[0] in short) == 5065


def test_industrial_r2_and_v90_counts_never_use_a_test_target(industrial):
    ds = industrial
    both = rebuild_train(ds.valid_file, ds.test, recipe="r1+r2")
    assert both.counts == {"r1": 6424, "r2": 3969, "train": 10393, "valid": 4532}
    assert len({(e.history, e.target_item_id) for e in both.train}) == 10134
    assert len({i for e in both.train for i in (*e.history, e.target_item_id)}) == 3196
    by_source = {e.source: e for e in ds.test}
    for e in both.train:
        if e.source.startswith("r2:"):
            row = by_source[e.source[3:].rsplit("[", 1)[0]]
            j = len(e.history)
            assert e.history == row.history[:j] and e.target_item_id == row.history[j]  # an input, not the target
    v90 = rebuild_train(ds.valid_file, recipe="r1+v90")
    assert (len(v90.train), len(v90.valid)) == (10502, 454)
    assert v90.valid == ds.valid_file[4078:]
    assert len(rebuild_train(ds.valid_file, ds.test, recipe="r1+r2+v90").train) == 14471


def test_cds_rebuild_counts(cds):
    assert len(cds.catalog) == 5841 and cds.catalog.sids is None
    assert (len(cds.valid), len(cds.test)) == (6156, 6157)
    assert len(cds.train) == 7350
    assert len({i for e in cds.train for i in (*e.history, e.target_item_id)}) == 4056
    assert len({e.target_item_id for e in cds.train}) == 3702
    first_valid = dt.datetime(2017, 9, 6, tzinfo=dt.timezone.utc).timestamp()
    assert max(e.timestamp for e in cds.train) <= first_valid
    v90 = rebuild_train(cds.valid, recipe="r1+v90")  # cut moved to the 2018-01-26 boundary
    assert v90.counts["v90"] == 5536 and len(v90.train) == 12886 and len(v90.valid) == 620
    assert rebuild_train(cds.valid, cds.test, recipe="r1+r2").counts["r2"] == 3346


def test_recipes_and_lookup_errors(tmp_path, synthetic_dir):
    assert parse_recipe("R1+v90") == ("r1", "v90")
    for bad in ("r2", "file+r1", "r1+r1", "r3", ""):
        with pytest.raises(ValueError):
            parse_recipe(bad)
    with pytest.raises(FileNotFoundError, match="not found; looked in"):
        load_dataset("No_Such_Category", data_dir=tmp_path)
    by_name = load_dataset("Synthetic", data_dir=synthetic_dir.parent)
    by_path = load_dataset(synthetic_dir, train_recipe="r1")
    assert by_name.train_recipe == "file" and by_path.train_recipe == "r1"
    assert by_name.test == by_path.test


def _rewrite(path, edits):
    """Apply {row_index: {column: value}} to a CSV (row 0 is on line 2)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    for i, change in edits.items():
        for col, value in change.items():
            rows[i + 1][header.index(col)] = value
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"history_item_id": "[1, 2"}, "not a Python list literal"),
        ({"item_id": "999"}, "out of range [0, 50)"),
        ({"item_sid": "<a_9><b_9><c_9>"}, "differs from index.json"),
        ({"item_title": "Wrong"}, "differs from the catalog title"),
        ({"history_item_id": "[]", "history_item_title": "[]", "history_item_sid": "[]"}, "history has 0 items"),
    ],
)
def test_malformed_row_names_file_line_and_reason(tmp_path, synthetic_dir, change, reason):
    folder = shutil.copytree(synthetic_dir, tmp_path / "Synthetic")
    _rewrite(folder / "Synthetic.valid.csv", {4: change})
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert "Synthetic.valid.csv:6:" in str(err.value) and reason in str(err.value)


def test_skip_bad_rows_counts(tmp_path, synthetic_dir, capsys):
    folder = shutil.copytree(synthetic_dir, tmp_path / "Synthetic")
    clean = load_dataset(folder)
    _rewrite(folder / "Synthetic.test.csv", {0: {"item_id": "-3"}, 7: {"history_item_id": "oops"}, 9: {"item_sid": "<a_0>"}})
    ds = load_dataset(folder, skip_bad_rows=True)
    assert ds.report["skipped"] == {"valid": 0, "test": 3, "train": 0}
    assert len(ds.test) == len(clean.test) - 3
    with pytest.raises(DataFormatError, match=r"Synthetic\.test\.csv:2: .*out of range"):
        load_dataset(folder)
    assert main(["genrec", "data", "--dataset", str(folder)]) == 2  # the CLI: message, no traceback
    assert "Synthetic.test.csv:2: item id -3 out of range" in capsys.readouterr().err
    assert main(["genrec", "data", "--dataset", str(folder), "--skip-bad-rows"]) == 0
    assert '"test": 3' in capsys.readouterr().out
    with pytest.raises(DataFormatError, match=r"history has \d+ items, expected 1..2"):
        read_examples(folder / "Synthetic.valid.csv", clean.catalog, max_history=2)


def test_write_read_round_trip(tmp_path, industrial):
    path = write_examples(tmp_path / f"{IND}.train_rebuilt.csv", industrial.train, industrial.catalog)
    back, skipped = read_examples(path, industrial.catalog)  # titles and SIDs re-checked on read
    assert skipped == 0
    assert [(e.history, e.target_item_id, e.user_id) for e in back] == [
        (e.history, e.target_item_id, e.user_id) for e in industrial.train
    ]


def test_catalog_write_round_trip(tmp_path, synthetic_dir):
    cat = ItemCatalog.from_dir(synthetic_dir)
    cat.write(tmp_path, "Copy")
    again = ItemCatalog.from_dir(tmp_path, "Copy")
    assert again.titles == cat.titles and again.descriptions == cat.descriptions
    assert again.sids.strings == cat.sids.strings


def test_pad_histories():
    seqs, lens = pad_histories([[1, 2, 3], [4]], max_len=2, pad=9)
    assert seqs.tolist() == [[2, 3], [4, 9]] and lens.tolist() == [2, 1]
    seqs, lens = pad_histories([[], [5]], max_len=2, pad=0)
    assert seqs.tolist() == [[0, 0], [5, 0]] and lens.tolist() == [0, 1]
