"""``rl4rec genrec data | preprocess | synth | build-sids``: dataset and semantic-ID tools.

Registry pipelines like the trainers: each has a config (``rl4rec config genrec.data``), takes
``[--config Y] [--flag V] [key=value ...]`` and prints a short summary (``--json`` the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rl4rec.config import ConfigError, field
from rl4rec.genrec.data.preprocess import PreprocessConfig
from rl4rec.genrec.data.synthetic import SyntheticConfig


@dataclass(frozen=True)
class DataCheckConfig:
    """``rl4rec genrec data``: load and validate a category, print its counts."""

    dataset: str = field("Industrial_and_Scientific", "category name or folder")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    train_recipe: str = field("auto", "auto | file | r1 | r1+r2 | r1+v90 | r1+r2+v90 | file+v90")
    skip_bad_rows: bool = field(False, "drop malformed rows (counted) instead of failing")
    write_train: str = field("", "write the training rows to this CSV, e.g. <C>.train_rebuilt.csv")


@dataclass(frozen=True)
class PreprocessCommandConfig(PreprocessConfig):
    """``rl4rec genrec preprocess``: raw Amazon 2018 review + metadata JSON lines -> a category folder."""

    reviews: str = field("", "review file (JSON lines, .gz allowed)")
    meta: str = field("", "metadata file (JSON lines, .gz allowed)")
    out: str = field("", "output category folder")

    def check(self) -> None:
        missing = [k for k in ("reviews", "meta", "out") if not getattr(self, k)]
        if missing:
            raise ConfigError(f"{missing[0]}: required (--{missing[0]} PATH)")


@dataclass(frozen=True)
class SynthCommandConfig(SyntheticConfig):
    """``rl4rec genrec synth``: a synthetic category with a known next-item rule."""

    out: str = field("data", "parent folder; the category goes to <out>/<name>")


def check_data(cfg: DataCheckConfig) -> dict[str, Any]:
    from rl4rec.genrec.data import load_dataset, write_examples

    ds = load_dataset(cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows)
    result = {"summary": ds.summary(), "report": ds.report}
    if cfg.write_train:
        result["train_file"] = str(write_examples(cfg.write_train, ds.train, ds.catalog))
        result["train_rows"], result["train_recipe"] = len(ds.train), ds.train_recipe
    return result


def format_data(r: dict[str, Any]) -> str:
    import json

    lines = [r["summary"], json.dumps(r["report"], indent=2)]
    if "train_file" in r:
        lines.append(f"wrote {r['train_rows']} training rows ({r['train_recipe']}) to {r['train_file']}")
    return "\n".join(lines)


def preprocess(cfg: PreprocessCommandConfig) -> dict[str, Any]:
    from rl4rec.genrec.data.preprocess import preprocess_amazon

    report = preprocess_amazon(cfg.reviews, cfg.meta, cfg.out, cfg)
    return {k: v for k, v in report.items() if k != "config"}


def synth(cfg: SynthCommandConfig) -> dict[str, Any]:
    from rl4rec.genrec.data import load_dataset
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(cfg.out, cfg)
    return {"folder": str(folder), "summary": load_dataset(folder).summary()}


def format_synth(r: dict[str, Any]) -> str:
    return f"{r['summary']}\nwritten to {r['folder']}"
