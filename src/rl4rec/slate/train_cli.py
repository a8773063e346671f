"""``rl4rec slate train | test | pretrain``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _overrides(args: argparse.Namespace, flags: tuple[str, ...]) -> list[str]:
    """Flags like ``--agent sac`` become overrides placed before the free ``key=value`` ones."""
    out = [f"{name}={getattr(args, name)}" for name in flags if getattr(args, name, None) is not None]
    return out + list(args.overrides)


def _train(args: argparse.Namespace) -> int:
    from rl4rec.config import load_config
    from rl4rec.slate.train import SlateTrainConfig, train_slate

    cfg = load_config(SlateTrainConfig, args.config, _overrides(args, ("agent", "ranker", "env", "seed")))
    result = train_slate(cfg)
    print(json.dumps(result, indent=2))
    return 0


def _test(args: argparse.Namespace) -> int:
    from rl4rec.runs import find_run
    from rl4rec.slate.train import retest_run

    result = retest_run(find_run(Path(args.runs_dir), args.run), args.users)
    print(json.dumps(result, indent=2))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from rl4rec.config import load_config
    from rl4rec.slate.pretrain import SlatePretrainConfig, pretrain_ranker

    cfg = load_config(SlatePretrainConfig, args.config, _overrides(args, ("ranker", "env", "seed")))
    print(json.dumps(pretrain_ranker(cfg), indent=2))
    return 0


def register_training(slate_sub: argparse._SubParsersAction) -> None:
    from rl4rec.cli import add_config_arguments

    p = slate_sub.add_parser("train", help="train an agent under the paper protocol (train, validate, test the best)")
    p.add_argument("--config", default=None, help="YAML config, e.g. configs/slate/sac_gems.yaml")
    p.add_argument("--agent", choices=["sac", "reinforce", "slateq", "random", "sto"], default=None)
    p.add_argument("--ranker", choices=["gems", "topk_ideal", "topk_mf", "wknn", "softmax", "none"], default=None)
    p.add_argument("--env", default=None, help="TopicRec variant, e.g. focused_topdown")
    p.add_argument("--seed", type=int, default=None)
    add_config_arguments(p)
    p.set_defaults(func=_train)

    p = slate_sub.add_parser("test", help="re-test a run's best checkpoint on the test users")
    p.add_argument("run", help="run name, EXPERIMENT/NAME or run directory")
    p.add_argument("--users", type=int, default=None, help="test users (default: the run's test_users)")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_test)

    p = slate_sub.add_parser("pretrain", help="pretrain GeMS or MF embeddings on logged data")
    p.add_argument("--config", default=None)
    p.add_argument("--ranker", choices=["gems", "mf"], default=None)
    p.add_argument("--env", default=None)
    p.add_argument("--seed", type=int, default=None)
    add_config_arguments(p)
    p.set_defaults(func=_pretrain)
