"""``rl4rec slate eval-policy | generate-logs | generate-embeddings``: the simulator's tools.

Each is a registry pipeline with a config like every other command: ``--env/--mode/--embeddings``
set ``sim.variant/sim.mode/sim.catalogue``, and any ``sim.<key>=value`` sets a TopicRec field
(e.g. ``sim.fix_divpen_threshold=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rl4rec.config import ConfigError, field
from rl4rec.slate.env.config import TopicRecConfig


@dataclass(frozen=True)
class SimulatorToolConfig:
    """The simulator a tool runs, and where."""

    sim: TopicRecConfig = field(default_factory=TopicRecConfig, help="the TopicRec simulator (--env sets sim.variant, --mode sim.mode, --embeddings sim.catalogue)")
    device: str = field("cpu", "torch device of the simulator")
    threads: int = field(1, "torch threads (the simulator's small ops do not gain from more)", ge=1)


@dataclass(frozen=True)
class EvalPolicyConfig(SimulatorToolConfig):
    """``rl4rec slate eval-policy``: full episodes of a reference policy on the test users."""

    policy: Literal["random", "sto", "eps_oracle"] = field("sto", "random slates, the short-term oracle, or the epsilon-greedy oracle")
    epsilon: float = field(0.5, "per-slot exploration probability of eps_oracle", ge=0.0, le=1.0)
    users: int = field(500, "test users (500: the paper's protocol)", ge=1)
    seed: int = field(58407201, "seed of the policy's own randomness (users come from sim.sim_seed)", ge=0)


@dataclass(frozen=True)
class GenerateLogsConfig(SimulatorToolConfig):
    """``rl4rec slate generate-logs``: logged sessions of the epsilon-greedy oracle (spec §2)."""

    sessions: int = field(100_000, "number of sessions (the paper's 100,000)", ge=1)
    seed: int = field(2754851, "seed of the logging policy (official 2754851); users come from sim.sim_seed", ge=0)
    epsilon: float = field(0.5, "per-slot probability of a random item", ge=0.0, le=1.0)
    out: str = field("", "dataset folder (empty: data_cache/slate_logs/<env>[-fixed])")
    batch_size: int = field(4096, "sessions simulated together", ge=1)
    overwrite: bool = field(False, "replace an existing dataset in out")
    progress: bool = field(True, "progress bar")


@dataclass(frozen=True)
class GenerateEmbeddingsConfig:
    """``rl4rec slate generate-embeddings``: a new item catalogue with the paper's recipe (spec §1.2)."""

    out: str = field("", "output .npy file (required)")
    peak_power: float | None = field(None, "null: like the released files; 1.5: the official code; 2: the paper's 'square'", gt=0.0)
    seed: int = field(0, "seed of the draw", ge=0)
    num_items: int = field(1000, "items", ge=1)
    num_topics: int = field(10, "topics", ge=1)
    topic_size: int = field(2, "dimensions per topic", ge=1)

    def check(self) -> None:
        if not self.out:
            raise ConfigError("out: name the .npy file to write (--out PATH)")


def eval_policy(cfg: EvalPolicyConfig) -> dict[str, Any]:
    from rl4rec.seeding import apply_threads
    from rl4rec.slate.env.simulator import TopicRecSimulator
    from rl4rec.slate.evaluate import evaluate_policy
    from rl4rec.slate.policies import make_policy

    apply_threads(cfg.threads)
    sim = TopicRecSimulator(cfg.sim, device=cfg.device)
    policy = make_policy(cfg.policy, sim.num_items, sim.rec_size, epsilon=cfg.epsilon, seed=cfg.seed, device=cfg.device)
    stats = evaluate_policy(sim, policy, cfg.users, population="test")
    return {"env": cfg.sim.variant, "mode": cfg.sim.mode, "policy": cfg.policy, **stats.to_dict()}


def format_eval_policy(r: dict[str, Any]) -> str:
    return f"{r['env']} ({r['mode']}) {r['policy']}: return {r['mean']:.2f} ± {r['std']:.2f} (std), SEM {r['sem']:.2f}, n = {r['n']} test users"


def generate_logs(cfg: GenerateLogsConfig) -> dict[str, Any]:
    from rl4rec.seeding import apply_threads
    from rl4rec.slate import logs

    apply_threads(cfg.threads)
    out = cfg.out or logs.default_dir(cfg.sim.variant, cfg.sim.mode)
    data = logs.generate_logs(cfg.sim, cfg.sessions, out, seed=cfg.seed, epsilon=cfg.epsilon, batch_size=cfg.batch_size,
                              device=cfg.device, progress=cfg.progress, overwrite=cfg.overwrite)
    return {"out": str(out), "env": cfg.sim.variant, "mode": cfg.sim.mode, "sessions": data.num_sessions,
            "seconds": data.meta["generation_seconds"], **data.meta["stats"]}


def format_logs(r: dict[str, Any]) -> str:
    return (f"wrote {r['sessions']} sessions of {r['env']} ({r['mode']}) to {r['out']} in {r['seconds']}s: "
            f"mean return {r['mean_return']:.2f}, {r['clicks_per_turn']:.3f} clicks/turn")


def generate_embeddings(cfg: GenerateEmbeddingsConfig) -> dict[str, Any]:
    from rl4rec.runs import atomic_save_npy
    from rl4rec.slate.env.embeddings import generate_embeddings as draw

    emb = draw(cfg.num_items, cfg.num_topics, cfg.topic_size, peak_power=cfg.peak_power, seed=cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(out, emb.numpy())
    return {"out": str(out), "shape": list(emb.shape), "peak_power": cfg.peak_power, "seed": cfg.seed}


def format_embeddings(r: dict[str, Any]) -> str:
    return f"wrote {tuple(r['shape'])} item embeddings (peak_power={r['peak_power']}, seed={r['seed']}) to {r['out']}"
