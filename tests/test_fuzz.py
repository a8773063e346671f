"""Bad inputs fuzzed with Hypothesis: every one ends in an input error that names the file (and the
line where there is one) or the key, never in another exception (a traceback at the CLI) and never
accepted silently when it changes what the file says.

Each test states the number of cases it tries (``max_examples``); the error types are the ones the
CLI prints as one line (ConfigError, InputError and its subclasses, FileNotFoundError).
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="install rl4rec[dev]")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rl4rec.config import ConfigError, apply_overrides, describe, load_config  # noqa: E402
from rl4rec.errors import InputError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TEXT = st.text(alphabet=string.printable + "äé€\u0000", max_size=40)


# --------------------------------------------------------------------------- configs and overrides


def _config_classes():
    from rl4rec.registry import PIPELINES

    return [p.config_class() for p in PIPELINES]


@FUZZ
@given(data=st.data())
def test_key_value_overrides_either_build_a_valid_config_or_name_the_key(data):
    cls = data.draw(st.sampled_from(_config_classes()))
    keys = [row[0] for row in describe(cls)]
    key = data.draw(st.one_of(st.sampled_from(keys), TEXT.filter(lambda t: "=" not in t)))
    value = data.draw(st.one_of(TEXT, st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                                st.lists(st.integers(-5, 5), max_size=4).map(json.dumps), st.sampled_from(["null", "true", "[]", "{}", "-1", "1e309"])))
    try:
        cfg = apply_overrides(cls, {}, [f"{key}={value}"])
    except ConfigError as err:
        assert str(err)  # names the key or the problem; never another exception
        return
    assert type(cfg) is cls


@FUZZ
@given(text=st.one_of(TEXT, st.text(max_size=200), st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
def test_yaml_config_files_fail_with_the_file_named(tmp_path, text):
    from rl4rec.smoke import SmokeConfig

    path = tmp_path / "cfg.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    try:
        load_config(SmokeConfig, path)
    except ConfigError as err:
        assert str(path) in str(err)  # the file is named, whatever went wrong in it


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from rl4rec.smoke import SmokeConfig

    path = tmp_path / "bad.yaml"
    path.write_text("steps: 3\nlr: [1, 2\nseed: 4\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(SmokeConfig, path)


# --------------------------------------------------------------------------- dataset files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from rl4rec.genrec.data.synthetic import SyntheticConfig, write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("fuzz_data"), SyntheticConfig(num_users=30))


def _corrupt_copy(dataset: Path, tmp_path: Path, suffix: str, mutate) -> Path:
    folder = tmp_path / f"case{np.random.default_rng().integers(1 << 30)}" / dataset.name
    shutil.copytree(dataset, folder)
    path = folder / f"{dataset.name}{suffix}"
    path.write_text(mutate(path.read_text()))
    return folder


def _replace_line(text: str, index: int, new: str) -> str:
    lines = text.split("\n")
    lines[index % max(len(lines) - 1, 1)] = new
    return "\n".join(lines)


@FUZZ
@given(index=st.integers(0, 60), line=TEXT)
def test_a_corrupted_csv_row_is_an_error_naming_file_and_line(dataset, tmp_path, index, line):
    from rl4rec.genrec.data import load_dataset

    original = (dataset / f"{dataset.name}.train.csv").read_text()
    folder = _corrupt_copy(dataset, tmp_path, ".train.csv", lambda t: _replace_line(t, index, line))
    try:
        ds = load_dataset(folder)
    except InputError as err:
        assert f"{dataset.name}.train.csv:" in str(err)
        return
    # accepted: only when the row still parses to what a row means (or the change was a no-op)
    new = (folder / f"{dataset.name}.train.csv").read_text()
    assert new == original or len(ds.train) in (original.count("\n") - 2, original.count("\n") - 1)


@FUZZ
@given(index=st.integers(0, 60), line=TEXT)
def test_a_corrupted_info_line_is_an_error_naming_file_and_line(dataset, tmp_path, index, line):
    from rl4rec.genrec.data import ItemCatalog

    folder = _corrupt_copy(dataset, tmp_path, ".info.txt", lambda t: _replace_line(t, index, line))
    try:
        ItemCatalog.from_dir(folder)
    except InputError as err:
        assert ".info.txt" in str(err) or ".item.json" in str(err) or ".index.json" in str(err)


@FUZZ
@given(doc=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 60), TEXT),
                        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12))
def test_a_bad_sid_index_is_an_error_naming_the_file(dataset, tmp_path, doc):
    from rl4rec.genrec.data import ItemCatalog

    folder = _corrupt_copy(dataset, tmp_path, ".index.json", lambda t: json.dumps(doc))
    with pytest.raises(InputError, match=r"index\.json"):
        ItemCatalog.from_dir(folder)


# --------------------------------------------------------------------------- slate files


@FUZZ
@given(arr=st.one_of(
    st.integers(0, 3).flatmap(lambda nd: st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=40).map(lambda v: np.array(v, dtype=np.float32).reshape(-1, *([1] * nd)))),
    st.just(np.zeros((5, 20), dtype=np.float32)),
    st.just(np.array(["a", "b"])),
    st.just(np.ones((3, 19))),
))
def test_bad_embeddings_files_are_errors_naming_the_file(tmp_path, arr):
    from rl4rec.slate.env.embeddings import load_embeddings

    path = tmp_path / "emb.npy"
    np.save(path, arr)
    with pytest.raises(InputError, match="emb.npy"):
        load_embeddings(path)


@FUZZ
@given(data=st.binary(max_size=200))
def test_garbage_npy_bytes_are_an_error_naming_the_file(tmp_path, data):
    from rl4rec.slate.env.embeddings import load_embeddings

    path = tmp_path / "emb.npy"
    path.write_bytes(data)
    with pytest.raises(InputError, match="emb.npy"):
        load_embeddings(path)


@pytest.fixture(scope="module")
def logs(tmp_path_factory, shared_data) -> Path:
    import os

    os.environ.setdefault("RL4REC_SHARED_DATA", str(shared_data))
    from rl4rec.slate.env.config import variant_config
    from rl4rec.slate.logs import generate_logs

    out = tmp_path_factory.mktemp("fuzz_logs") / "logs"
    generate_logs(variant_config("focused_topdown"), 8, out, progress=False)
    return out


@FUZZ
@given(which=st.sampled_from(["meta.json", "slates.npy", "clicks.npy"]), data=st.binary(max_size=300), keep=st.integers(0, 400))
def test_corrupted_logged_sessions_are_errors_naming_the_file(logs, tmp_path, which, data, keep):
    from rl4rec.slate.logs import load_logs

    folder = tmp_path / f"case{np.random.default_rng().integers(1 << 30)}"
    shutil.copytree(logs, folder)
    original = (folder / which).read_bytes()
    (folder / which).write_bytes(original[:keep] + data)  # truncated and/or garbage appended
    try:
        load_logs(folder)
    except (InputError, FileNotFoundError) as err:
        assert str(folder) in str(err)
        return
    assert (folder / which).read_bytes() == original  # accepted only when nothing changed


def test_bad_files_at_the_command_line_end_in_one_line_and_exit_2(tmp_path, capsys, shared_data, monkeypatch):
    from rl4rec.cli import main

    monkeypatch.setenv("RL4REC_SHARED_DATA", str(shared_data))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "bad.yaml").write_text("steps: [1\n")
    logs = tmp_path / "logs"
    assert main(["slate", "generate-logs", "--sessions", "2", "--out", str(logs), "progress=false"]) == 0
    capsys.readouterr()
    cases = [
        ["slate", "eval-policy", "--users", "5", "--embeddings", str(tmp_path / "bad.npy")],
        ["smoke", str(tmp_path / "bad.yaml")],
        ["slate", "generate-logs", "--sessions", "2", "--out", str(logs), "progress=false"],  # exists, no --overwrite
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("rl4rec:"), err
