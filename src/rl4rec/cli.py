"""The ``rl4rec`` command: one argparse tree, each family adds its subcommands via ``register``.

Family CLIs live next to their code (``rl4rec/slate/cli.py``, ``rl4rec/genrec/cli.py``, ...) and
expose ``register(subparsers)``; each subcommand sets ``func`` to a handler taking the parsed
namespace and returning an exit code. Heavy imports (torch, transformers) happen inside handlers
so that ``rl4rec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rl4rec.config import ConfigError

#: modules providing ``register(subparsers)``, in the order they appear in ``--help``
FAMILY_CLIS = (
    "rl4rec.runs_cli",
    "rl4rec.smoke",
    "rl4rec.quickstart",
    "rl4rec.slate.cli",
    "rl4rec.genrec.cli",
    "rl4rec.experiments.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl4rec",
        description="Train and evaluate recommenders with reinforcement learning.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in FAMILY_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            # Only a family that is not written yet may be absent; a broken import inside an
            # existing family module is re-raised so it is never hidden.
            if err.name == module_name or module_name.startswith(str(err.name) + "."):
                continue
            raise
        module.register(sub)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser, *, config_required: bool = False) -> None:
    """The uniform ``[CONFIG.yaml] [key=value ...]`` tail of every training command."""
    if config_required:
        parser.add_argument("config", help="YAML config file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted config overrides, e.g. env.click_model=mixPBM seed=3",
    )


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
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"rl4rec: config error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rl4rec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
