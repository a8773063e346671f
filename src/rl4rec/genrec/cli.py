"""``rl4rec genrec ...``: the generative-recommendation command group.

Subcommands here: ``data`` (load, validate, summarise, materialise a train rebuild),
``preprocess`` (raw Amazon 2018 files -> a category folder), ``synth`` (a synthetic category),
``build-sids`` and ``train-baseline``; ``sft`` and ``eval`` come from :data:`COMMAND_MODULES`.

Adding a subcommand: write a module with ``register(genrec_subparsers)`` (keep heavy imports
inside the handler so ``rl4rec --help`` stays fast) and list it in :data:`COMMAND_MODULES`.
:func:`config_from_args` turns ``[--config Y] [--flag V ...] [key=value ...]`` into a config.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

#: extra modules providing ``register(genrec_subparsers)``; one that does not exist is skipped
COMMAND_MODULES: tuple[str, ...] = ("rl4rec.genrec.sft", "rl4rec.genrec.evaluate", "rl4rec.genrec.grpo.cli", "rl4rec.genrec.latent.cli")


def config_from_args(cls: type, args: argparse.Namespace, flags: Iterable[str] = ()) -> Any:
    """YAML ``args.config`` (if any), then the named ``--flags`` that were given, then
    ``args.overrides`` (``key=value``), validated into one ``cls`` object."""
    from rl4rec.config import ConfigError, apply_overrides, load_yaml

    overrides = list(getattr(args, "overrides", None) or [])
    config = getattr(args, "config", None)
    positional = [o for o in overrides if "=" not in o and o.endswith((".yaml", ".yml"))]  # `rl4rec genrec grpo X.yaml k=v`
    if positional:
        if config or len(positional) > 1:
            raise ConfigError(f"one config file please: got {[config, *positional] if config else positional}")
        config, overrides = positional[0], [o for o in overrides if o != positional[0]]
    data: dict[str, Any] = load_yaml(config) if config else {}
    for key in flags:
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    return apply_overrides(cls, data, overrides)


def friendly_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Missing files and malformed data end the command with their message and exit code 2
    (the message already names the file, line and reason; a traceback adds nothing)."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        from rl4rec.genrec.data.catalog import DataFormatError
        from rl4rec.genrec.sid.codec import SIDFormatError

        try:
            return handler(args)
        except (FileNotFoundError, DataFormatError, SIDFormatError) as err:
            print(f"rl4rec: error: {err}", file=sys.stderr)
            return 2

    return wrapped


def report_result(result: dict | None, fmt: Callable[[dict], str]) -> int:
    """Print a finished training's summary, or how to continue a stopped one; exit code 0."""
    print("stopped; continue with resume=true" if result is None else fmt(result))
    return 0


def _tail(p: argparse.ArgumentParser) -> None:
    from rl4rec.cli import add_config_arguments

    p.add_argument("--config", default=None, help="optional YAML config")
    add_config_arguments(p)


# --------------------------------------------------------------------------- data


@friendly_errors
def _cmd_data(args: argparse.Namespace) -> int:
    from rl4rec.genrec.data import load_dataset, write_examples

    ds = load_dataset(
        args.dataset, args.data_dir, train_recipe=args.train_recipe, skip_bad_rows=args.skip_bad_rows
    )
    print(ds.summary())
    print(json.dumps(ds.report, indent=2))
    if args.write_train:
        path = write_examples(args.write_train, ds.train, ds.catalog)
        print(f"wrote {len(ds.train)} training rows ({ds.train_recipe}) to {path}")
    return 0


@friendly_errors
def _cmd_preprocess(args: argparse.Namespace) -> int:
    from rl4rec.genrec.data.preprocess import PreprocessConfig, preprocess_amazon

    cfg = config_from_args(PreprocessConfig, args, ("name",))
    report = preprocess_amazon(args.reviews, args.meta, args.out, cfg)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2))
    return 0


@friendly_errors
def _cmd_synth(args: argparse.Namespace) -> int:
    from rl4rec.genrec.data import load_dataset
    from rl4rec.genrec.data.synthetic import SyntheticConfig, write_synthetic_dataset

    cfg = config_from_args(SyntheticConfig, args)
    folder = write_synthetic_dataset(args.out, cfg)
    print(load_dataset(folder).summary())
    print(f"written to {folder}")
    return 0


# --------------------------------------------------------------------------- SIDs and baselines


@friendly_errors
def _cmd_build_sids(args: argparse.Namespace) -> int:
    from rl4rec.genrec.sid.build import SIDBuildConfig, build_sids, summarize

    cfg = config_from_args(SIDBuildConfig, args, ("dataset", "data_dir", "method", "encoder", "out"))
    print(summarize(build_sids(cfg)))
    return 0


@friendly_errors
def _cmd_train_baseline(args: argparse.Namespace) -> int:
    from rl4rec.genrec.baselines.train import BaselineConfig, format_results, train_baseline

    cfg = config_from_args(BaselineConfig, args, ("model", "dataset", "data_dir"))
    return report_result(train_baseline(cfg), format_results)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("genrec", help="generative recommendation: datasets, semantic IDs, baselines")
    gsub = group.add_subparsers(dest="genrec_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _args: group.print_help() or 0)

    p = gsub.add_parser("data", help="load and validate a category; print counts; optionally write the train rebuild")
    p.add_argument("--dataset", default="Industrial_and_Scientific", help="category name or folder")
    p.add_argument("--data-dir", default=None, help="folder holding category folders")
    p.add_argument("--train-recipe", default="auto", help="auto | file | r1 | r1+r2 | r1+v90 | r1+r2+v90 | file+v90")
    p.add_argument("--skip-bad-rows", action="store_true", help="drop malformed rows (counted) instead of failing")
    p.add_argument("--write-train", default=None, metavar="CSV", help="write the training rows, e.g. <C>.train_rebuilt.csv")
    p.set_defaults(func=_cmd_data)

    p = gsub.add_parser("preprocess", help="raw Amazon 2018 review + metadata JSON lines -> a category folder")
    p.add_argument("--reviews", required=True, help="review file (JSON lines, .gz allowed)")
    p.add_argument("--meta", required=True, help="metadata file (JSON lines, .gz allowed)")
    p.add_argument("--out", required=True, help="output category folder")
    p.add_argument("--name", default=None, help="category name (files <name>.train.csv, ...)")
    _tail(p)
    p.set_defaults(func=_cmd_preprocess)

    p = gsub.add_parser("synth", help="write a synthetic category with a known next-item rule")
    p.add_argument("--out", required=True, help="parent folder; the category goes to <out>/<name>")
    _tail(p)
    p.set_defaults(func=_cmd_synth)

    p = gsub.add_parser("build-sids", help="semantic IDs: embeddings -> RQ-KMeans / RQ-VAE -> collision handling -> index.json")
    p.add_argument("--dataset", default=None, help="category name or folder")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="folder holding category folders")
    p.add_argument("--method", default=None, help="rqkmeans | rqkmeans_balanced | rqvae | provided")
    p.add_argument("--encoder", default=None, help="minilm | hash | hash:DIM | local model folder")
    p.add_argument("--out", default=None, help="output folder")
    _tail(p)
    p.set_defaults(func=_cmd_build_sids)

    p = gsub.add_parser("train-baseline", help="train + test a baseline (pop, sasrec, gru4rec); writes test_results.json")
    p.add_argument("--model", default=None, help="pop | sasrec | gru4rec")
    p.add_argument("--dataset", default=None, help="category name or folder")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="folder holding category folders")
    _tail(p)
    p.set_defaults(func=_cmd_train_baseline)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        module.register(gsub)
