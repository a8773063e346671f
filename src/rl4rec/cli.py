"""The ``rl4rec`` command: one argparse tree built from :mod:`rl4rec.registry` and the family tools.

Every pipeline (training, evaluation or tool) gets its command from :data:`rl4rec.registry.PIPELINES`:
``rl4rec <family> <command> [CONFIG.yaml] [--config CONFIG.yaml] [--flag VALUE] [--json] [key=value ...]``.
The modules of :data:`COMMAND_MODULES` add the commands that are not pipelines (runs, sweeps,
reports, the quickstart) through ``register(subparsers, groups)``. Heavy imports (torch,
transformers) happen inside handlers so that ``rl4rec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys

from rl4rec.config import ConfigError, config_from_args
from rl4rec.errors import InputError, NonFiniteError
from rl4rec.registry import FAMILIES, PIPELINES, format_json, load

#: modules providing ``register(subparsers, groups)``, in the order they appear in ``--help``
COMMAND_MODULES = ("rl4rec.runs_cli", "rl4rec.quickstart", "rl4rec.experiments.cli", "rl4rec.genrec.latent.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl4rec",
        description="Train and evaluate recommenders with reinforcement learning.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for family, text in FAMILIES.items():
        group = sub.add_parser(family, help=text, description=text)
        group.set_defaults(func=lambda _args, g=group: (g.print_help(), 2)[1])
        groups[family] = group.add_subparsers(dest=f"{family}_command", metavar="SUBCOMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub, groups)
    for pipeline in PIPELINES:
        *family, name = pipeline.command
        parent = groups[family[0]] if family else sub
        add_pipeline_command(parent, name, pipeline)
    return parser


def add_pipeline_command(parent: argparse._SubParsersAction, name: str, pipeline) -> None:
    """``name [POSITIONAL] [--config Y] [--flag V ...] [--smoke] [key=value ...]`` for a pipeline."""
    p = parent.add_parser(name, help=pipeline.help, description=f"{pipeline.help}. Keys: rl4rec config {pipeline.name}")
    if pipeline.positional:
        p.add_argument(pipeline.positional, nargs="?", default=None, help=f"the config key {pipeline.positional} (or give {pipeline.positional}=...)")
    p.add_argument("--config", default=None, help="YAML config file (or give it as the first argument)")
    for flag, key in _flag_keys(pipeline):
        p.add_argument("--" + flag.replace("_", "-"), dest="flag:" + key, default=None, help=f"the config key {key}")
    for key in pipeline.switches:
        p.add_argument("--" + key.replace("_", "-"), dest="flag:" + key, action="store_const", const="true", help=f"{key}=true")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    if pipeline.smoke:
        p.add_argument("--smoke", action="store_true", help="the whole path on a synthetic catalogue (seconds); overrides go to its last stage")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides, e.g. env.click_model=mixPBM seed=3")
    p.set_defaults(func=functools.partial(_run_pipeline, pipeline))


def _flag_keys(pipeline) -> list[tuple[str, str]]:
    """``(flag, dotted key)`` of each ``flags`` entry (``env=sim.variant`` or just ``seed``)."""
    return [tuple(spec.split("=", 1)) if "=" in spec else (spec, spec) for spec in pipeline.flags]


def _run_pipeline(pipeline, args: argparse.Namespace) -> int:
    if pipeline.positional:
        value = getattr(args, pipeline.positional, None)
        if value is not None and ("=" in value or value.endswith((".yaml", ".yml"))):
            args.overrides = [value, *args.overrides]  # a key=value or the config file, not the run
        elif value is not None:
            args.overrides = [*args.overrides, f"{pipeline.positional}={value}"]
    if getattr(args, "smoke", False):
        runs_dir = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("runs_dir=")), "runs")
        rest = [o for o in args.overrides if not o.startswith("runs_dir=")]
        result = load(pipeline.smoke)(runs_dir, rest, progress=True)
    else:
        keys = [key for _, key in _flag_keys(pipeline)] + list(pipeline.switches)
        flags = [f"{key}={getattr(args, 'flag:' + key)}" for key in keys if getattr(args, "flag:" + key, None) is not None]
        result = pipeline.run(config_from_args(pipeline.config_class(), args, flags))
    if result is None:
        print("stopped; continue with resume=true")
    else:
        print(format_json(result) if args.json else pipeline.format(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after --flags; argparse only takes positionals in
    # one run, so the ones after the flags come back as "unknown" and are added here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if stray or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from rl4rec.runs import RunExistsError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, RunExistsError, FileNotFoundError, FileExistsError, InputError, NonFiniteError) as err:
        # the message names the file, line or key: one line, no traceback
        print(f"rl4rec: {'config error' if isinstance(err, ConfigError) else 'error'}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rl4rec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
