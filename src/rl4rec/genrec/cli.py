"""``rl4rec genrec ...``: the generative-recommendation command group.

Tools here: ``data`` (load, validate, summarise, materialise a train rebuild), ``preprocess`` (raw
Amazon 2018 files -> a category folder), ``synth`` (a synthetic category), ``build-sids`` and
``latent-eval``. The pipelines (``train-baseline``, ``sft``, ``eval``, ``grpo``, ``grpo-text``,
``latent-sft``, ``latent-grpo``) come from :data:`rl4rec.registry.PIPELINES`.
:func:`rl4rec.config.config_from_args` turns ``[--config Y] [--flag V ...] [key=value ...]`` into a config.
"""

from __future__ import annotations

import argparse
import json

from rl4rec.config import config_from_args

__all__ = ["config_from_args", "register"]


def _tail(p: argparse.ArgumentParser) -> None:
    from rl4rec.cli import add_config_arguments

    p.add_argument("--config", default=None, help="optional YAML config")
    add_config_arguments(p)


# --------------------------------------------------------------------------- data


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


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from rl4rec.genrec.data.preprocess import PreprocessConfig, preprocess_amazon

    cfg = config_from_args(PreprocessConfig, args, ("name",))
    report = preprocess_amazon(args.reviews, args.meta, args.out, cfg)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from rl4rec.genrec.data import load_dataset
    from rl4rec.genrec.data.synthetic import SyntheticConfig, write_synthetic_dataset

    cfg = config_from_args(SyntheticConfig, args)
    folder = write_synthetic_dataset(args.out, cfg)
    print(load_dataset(folder).summary())
    print(f"written to {folder}")
    return 0


# --------------------------------------------------------------------------- SIDs and baselines


def _cmd_build_sids(args: argparse.Namespace) -> int:
    from rl4rec.genrec.sid.build import SIDBuildConfig, build_sids, summarize

    cfg = config_from_args(SIDBuildConfig, args, ("dataset", "data_dir", "method", "encoder", "out"))
    print(summarize(build_sids(cfg)))
    return 0


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
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

    from rl4rec.genrec.latent.cli import register_eval

    register_eval(gsub)
    return gsub  # the training and evaluation pipelines come from rl4rec.registry
