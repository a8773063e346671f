"""A category folder by name or path -> catalog + train/valid/test examples, validated.

    ds = load_dataset("Industrial_and_Scientific", data_dir="../shared/data")   # R1 rebuild
    ds = load_dataset("/path/to/MyCategory", train_recipe="file")               # own train.csv

A category folder holds ``<C>.info.txt`` plus ``<C>.valid.csv``, ``<C>.test.csv`` and optionally
``<C>.train.csv``, ``<C>.item.json``, ``<C>.index.json`` (see ``shared/data/amazon/README.md``).
Names are looked up under the data directory given, then ``$RL4REC_DATA_DIR``, ``./data`` and
``../shared/data`` (each also under ``amazon/``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec.genrec.data.catalog import ItemCatalog
from rl4rec.genrec.data.examples import MAX_HISTORY, SeqExample, read_examples
from rl4rec.genrec.data.rebuild import parse_recipe, rebuild_train

log = logging.getLogger(__name__)

__all__ = ["SeqDataset", "load_dataset", "resolve_dataset_dir", "default_data_dirs"]


def default_data_dirs() -> list[Path]:
    """Where dataset names are looked up when no data directory is given: ``$RL4REC_DATA_DIR``,
    then ``data/`` and ``../shared/data`` relative to the working directory (never the package's
    own location: an installed package has no checkout around it)."""
    env = os.environ.get("RL4REC_DATA_DIR")
    return [*([Path(env)] if env else []), Path("data"), Path("..") / "shared" / "data"]


def _category_name(directory: Path) -> str | None:
    if (directory / f"{directory.name}.info.txt").is_file():
        return directory.name
    infos = sorted(directory.glob("*.info.txt"))
    return infos[0].name.removesuffix(".info.txt") if len(infos) == 1 else None


def resolve_dataset_dir(name_or_dir: str | Path, data_dir: str | Path | None = None) -> tuple[Path, str]:
    """(folder, category name) of a dataset given by folder path or by category name."""
    as_path = Path(name_or_dir)
    if as_path.is_dir():
        name = _category_name(as_path)
        if name is None:
            raise FileNotFoundError(f"{as_path} holds no single <Category>.info.txt, so it is not a category folder")
        return as_path, name
    roots = [Path(data_dir)] if data_dir else default_data_dirs()
    tried = []
    for root in roots:
        for candidate in (root / str(name_or_dir), root / "amazon" / str(name_or_dir)):
            tried.append(str(candidate))
            if candidate.is_dir() and (name := _category_name(candidate)):
                return candidate, name
    raise FileNotFoundError(
        f"dataset {str(name_or_dir)!r} not found; looked in {', '.join(tried)}. "
        "Pass a category folder or --data-dir (data_dir=...) holding it."
    )


@dataclass
class SeqDataset:
    """A loaded category: the catalog, the splits and how the training rows were made.

    ``valid`` is the model-selection set (the whole valid file, or its last 10 % under ``v90``);
    ``valid_file`` is always the whole file. ``test`` is the official test file, untouched.
    """

    name: str
    directory: Path
    catalog: ItemCatalog
    train: list[SeqExample]
    valid: list[SeqExample]
    test: list[SeqExample]
    train_recipe: str
    valid_file: list[SeqExample] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return len(self.catalog)

    def split(self, name: str) -> list[SeqExample]:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {name!r}")
        return getattr(self, name)

    def summary(self) -> str:
        c = self.report.get("counts", {})
        parts = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("train", "valid"))
        return (
            f"{self.name}: {self.num_items} items; train {len(self.train)} ({self.train_recipe}: {parts}), "
            f"valid {len(self.valid)}, test {len(self.test)}"
            + (f"; SIDs {self.catalog.sids.num_levels} levels" if self.catalog.sids is not None else "; no SIDs")
        )


def load_dataset(
    name_or_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    train_recipe: str = "auto",
    skip_bad_rows: bool = False,
    max_history: int = MAX_HISTORY,
    sid_index: str | Path | None = None,
) -> SeqDataset:
    """Load and validate a category folder.

    Args:
        name_or_dir: a category folder, or a category name looked up under ``data_dir``.
        data_dir: where category folders live (default: see :func:`default_data_dirs`).
        train_recipe: ``"auto"`` (the train CSV when the folder has one, else ``r1``) or an
            explicit recipe: ``file``, ``r1``, ``r1+r2``, ``r1+v90``, ``file+v90``, ...
            (:mod:`rl4rec.genrec.data.rebuild`).
        skip_bad_rows: drop malformed CSV rows (counted in ``report["skipped"]``) instead of
            raising :class:`DataFormatError`.
        max_history: the longest history a row may have.
        sid_index: an ``index.json`` that replaces the folder's SIDs (e.g. from ``build-sids``);
            the CSV SID columns are still checked against the folder's own SIDs.
    """
    directory, name = resolve_dataset_dir(name_or_dir, data_dir)
    catalog = ItemCatalog.from_dir(directory, name)
    train_csv = directory / f"{name}.train.csv"
    if train_recipe == "auto":
        recipe = "file" if train_csv.is_file() else "r1"
    else:
        recipe = "+".join(parse_recipe(train_recipe))
    skipped: dict[str, int] = {}

    def read(split: str) -> list[SeqExample]:
        path = directory / f"{name}.{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (needed for the {split} split, recipe {recipe})")
        rows, n_skipped = read_examples(path, catalog, skip_bad_rows=skip_bad_rows, max_history=max_history)
        skipped[split] = n_skipped
        return rows

    valid = read("valid")
    test = read("test")
    train_file = read("train") if "file" in recipe.split("+") else None
    built = rebuild_train(valid, test, recipe=recipe, train_file=train_file)
    if sid_index is not None:
        from rl4rec.genrec.sid.codec import SIDCodec

        catalog = catalog.with_sids(SIDCodec.from_index_json(sid_index, num_items=len(catalog)))
    report = {"recipe": built.recipe, "counts": built.counts, "skipped": skipped, "directory": str(directory)}
    ds = SeqDataset(name, directory, catalog, built.train, built.valid, test, built.recipe, valid, report)
    log.info("%s", ds.summary())
    return ds
