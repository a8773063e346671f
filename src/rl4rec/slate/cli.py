"""``rl4rec slate ...``: the slate family's commands (simulator, logged data, reference policies).

``register`` adds one ``slate`` parser whose sub-commands are added by small ``_add_<name>``
functions and returns its subparsers, so the registry's pipelines (train, test, pretrain) join the
same group. Handlers take the argparse namespace,
import torch lazily and return an exit code. Environment settings go through
:class:`~rl4rec.slate.env.config.TopicRecConfig` (``--env``/``--mode``/``--embeddings`` plus any
``key=value`` override of its fields, e.g. ``fix_divpen_threshold=true``).
"""

from __future__ import annotations

import argparse
import json
import sys

from rl4rec.slate.env.config import VARIANTS


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    slate = subparsers.add_parser(
        "slate",
        help="slate recommendation in the TopicRec simulator (GeMS)",
        description="Slate recommendation with RL in the TopicRec user simulator (GeMS, WSDM 2023).",
    )
    slate.set_defaults(func=lambda args: (slate.print_help(), 2)[1])
    sub = slate.add_subparsers(dest="slate_command", metavar="SUBCOMMAND")
    _add_eval_policy(sub)
    _add_generate_logs(sub)
    _add_generate_embeddings(sub)
    return sub  # train, test, pretrain come from rl4rec.registry


# --------------------------------------------------------------------------- shared arguments


def add_env_arguments(parser: argparse.ArgumentParser, *, default_env: str | None = "focused_topdown") -> None:
    """``--env --mode --embeddings --device --threads`` and ``key=value`` TopicRecConfig overrides."""
    parser.add_argument("--env", default=default_env, required=default_env is None, help=f"environment variant: {', '.join(VARIANTS)}")
    parser.add_argument("--mode", choices=("faithful", "fixed"), default="faithful", help="faithful = official simulator incl. its bugs; fixed = every §9 correction")
    parser.add_argument("--embeddings", metavar="PATH", help="item embeddings .npy to use instead of the variant's released catalogue")
    parser.add_argument("--device", default="cpu", help="torch device of the simulator (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the simulator's small ops do not gain from more)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="TopicRecConfig overrides, e.g. fix_divpen_threshold=true sim_seed=1")


def env_config(args: argparse.Namespace):
    """The validated :class:`TopicRecConfig` of the parsed ``add_env_arguments`` arguments."""
    from rl4rec.config import apply_overrides
    from rl4rec.slate.env.config import TopicRecConfig, check_env_name

    base = {"variant": check_env_name(args.env), "mode": args.mode}
    if args.embeddings:
        base["catalogue"] = args.embeddings
    return apply_overrides(TopicRecConfig, base, args.overrides)


def _setup_torch(args: argparse.Namespace) -> None:
    from rl4rec.seeding import apply_threads

    apply_threads(args.threads)


# --------------------------------------------------------------------------- eval-policy


def _add_eval_policy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-policy",
        help="mean/std/SEM of a reference policy's return over the test users",
        description="Run full episodes of a reference policy on the test users and print mean, std and SEM of the return.",
    )
    p.add_argument("--policy", choices=("random", "sto", "eps_oracle"), required=True, help="random slates, short-term oracle, or epsilon-greedy oracle")
    p.add_argument("--epsilon", type=float, default=0.5, help="per-slot exploration probability of eps_oracle (default 0.5)")
    p.add_argument("--users", type=int, default=500, help="test users (default 500, the paper's protocol)")
    p.add_argument("--seed", type=int, default=58407201, help="seed of the policy's own randomness (users come from sim_seed)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object {mean, std, sem, n} on stdout")
    add_env_arguments(p)
    p.set_defaults(func=_eval_policy)


def _eval_policy(args: argparse.Namespace) -> int:
    cfg = env_config(args)
    if args.users < 1:
        print("rl4rec: --users must be positive", file=sys.stderr)
        return 2
    _setup_torch(args)
    from rl4rec.slate.env.simulator import TopicRecSimulator
    from rl4rec.slate.evaluate import evaluate_policy
    from rl4rec.slate.policies import make_policy

    sim = TopicRecSimulator(cfg, device=args.device)
    policy = make_policy(args.policy, sim.num_items, sim.rec_size, epsilon=args.epsilon, seed=args.seed, device=args.device)
    stats = evaluate_policy(sim, policy, args.users, population="test")
    if args.json:
        print(json.dumps(stats.to_dict()))
    else:
        print(
            f"{cfg.variant} ({cfg.mode}) {args.policy}: return {stats.mean:.2f} ± {stats.std:.2f} (std), "
            f"SEM {stats.sem:.2f}, n = {stats.n} test users"
        )
    return 0


# --------------------------------------------------------------------------- generate-logs


def _add_generate_logs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate-logs",
        help="logged sessions of the epsilon-greedy oracle (GeMS / MF training data)",
        description="Generate logged sessions with the per-slot epsilon-greedy oracle (spec §2): slates.npy, clicks.npy, meta.json.",
    )
    p.add_argument("--sessions", type=int, default=100_000, help="number of sessions (default 100000, the paper's)")
    p.add_argument("--seed", type=int, default=2754851, help="seed of the logging policy (official 2754851); users come from sim_seed")
    p.add_argument("--epsilon", type=float, default=0.5, help="per-slot probability of a random item (default 0.5)")
    p.add_argument("--out", metavar="DIR", help="dataset folder (default data_cache/slate_logs/<env>[-fixed])")
    p.add_argument("--batch-size", type=int, default=4096, help="sessions simulated together (default 4096)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / progress lines")
    add_env_arguments(p)
    p.set_defaults(func=_generate_logs)


def _generate_logs(args: argparse.Namespace) -> int:
    cfg = env_config(args)
    _setup_torch(args)
    from rl4rec.slate.logs import default_dir, generate_logs

    out = args.out or default_dir(cfg.variant, cfg.mode)
    data = generate_logs(
        cfg,
        args.sessions,
        out,
        seed=args.seed,
        epsilon=args.epsilon,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    stats = data.meta["stats"]
    print(
        f"wrote {data.num_sessions} sessions of {cfg.variant} ({cfg.mode}) to {out} in {data.meta['generation_seconds']}s: "
        f"mean return {stats['mean_return']:.2f}, {stats['clicks_per_turn']:.3f} clicks/turn"
    )
    return 0


# --------------------------------------------------------------------------- generate-embeddings


def _add_generate_embeddings(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate-embeddings",
        help="draw a new item catalogue (.npy) with the paper's recipe",
        description="Draw a TopicRec item catalogue (spec §1.2). --peak-power: none = like the released files, 1.5 = official code, 2 = paper 'square'.",
    )
    p.add_argument("--out", required=True, metavar="PATH", help="output .npy file")
    p.add_argument("--peak-power", default="none", help="none (default), or a positive power such as 1.5 or 2")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw")
    p.add_argument("--num-items", type=int, default=1000)
    p.add_argument("--num-topics", type=int, default=10)
    p.add_argument("--topic-size", type=int, default=2)
    p.set_defaults(func=_generate_embeddings)


def _generate_embeddings(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rl4rec.runs import atomic_save_npy
    from rl4rec.slate.env.embeddings import generate_embeddings

    power = None if str(args.peak_power).lower() == "none" else float(args.peak_power)
    emb = generate_embeddings(args.num_items, args.num_topics, args.topic_size, peak_power=power, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(out, emb.numpy())
    print(f"wrote {tuple(emb.shape)} item embeddings (peak_power={power}, seed={args.seed}) to {out}")
    return 0
