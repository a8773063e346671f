"""``rl4rec slate train``: the paper's protocol (spec slate_rl.md §7) for one or many seeds at once.

One step = one 100-turn episode per seed + one gradient update on a batch of 20 stored
trajectories; random actions for the first ``random_steps``; validation every ``eval_every`` steps
on ``val_users`` users with the deterministic policy; each seed's best-validation parameters are
tested on ``test_users`` test users. ``seeds=[a, b, ...]`` trains those seeds in one process with
stacked networks; results are reported per seed.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rl4rec.config import ConfigError, field
from rl4rec.devices import default_device
from rl4rec.metrics.stats import mean_ci
from rl4rec.slate.agents import AgentConfig, ReferenceAgent, ReinforceAgent, SACAgent, SlateQAgent, WkNNAgent
from rl4rec.slate.buffer import TrajectoryBuffer
from rl4rec.slate.env.config import check_env_key, variant_config
from rl4rec.slate.env.simulator import TopicRecSimulator
from rl4rec.slate.loop import run_episodes
from rl4rec.slate.nets import select_members
from rl4rec.slate.rankers import GeMS, GeMSConfig, TopK
from rl4rec.slate.rankers.pretrain import PretrainConfig, pretrain_on_logs
from rl4rec.training import DeviceConfig, LoopConfig, Task, default, fit

log = logging.getLogger(__name__)

AGENT_RANKERS = {
    "sac": ("gems", "topk_ideal", "topk_mf", "wknn"),
    "reinforce": ("softmax",),
    "slateq": ("none",),
    "random": ("none",),
    "sto": ("none",),
}


@dataclass(frozen=True)
class SlateTrainConfig(LoopConfig):
    """Slate RL training under the GeMS paper's protocol."""

    NAME_KEYS = ("agent", "ranker", "env")
    #: compiled and eager turns compute the same episodes (up to float rounding): one run name
    # a cached GeMS is the GeMS the run would pretrain; init_from is a path (the sweep's chaining)
    NAME_EXCLUDE = (*LoopConfig.NAME_EXCLUDE, "compile", "gems_cache", "init_from")

    experiment: str = field("slate", "experiment name")
    agent: Literal["sac", "reinforce", "slateq", "random", "sto"] = field("sac", "agent", short="")
    ranker: Literal["gems", "topk_ideal", "topk_mf", "wknn", "softmax", "none"] = field("gems", "action-to-slate map", short="")
    env: str = field("focused_topdown", "TopicRec variant (focused|diffuse)_(topdown|mix|divpen)", short="")
    env_mode: Literal["faithful", "fixed"] = field("faithful", "simulator behaviour: faithful to the official code, or every fix on", short="env")
    embeddings: str = field("", "item-embedding .npy overriding the variant's released file")
    mf_embeddings: str = field("", "MF item factors for topk_mf (default: the released <env>.npy in the shared data)")
    seeds: tuple[int, ...] = field((), "train these seeds together in one process (empty: just `seed`)")
    steps: int = field(100_000, "training iterations (episodes) per seed; the paper uses 100K", ge=1)
    random_steps: int = field(2000, "iterations with random actions before learning", ge=0)
    eval_every: int = default(LoopConfig, "eval_every", 1000, "validate every N iterations")
    val_users: int = field(200, "validation users", ge=1)
    test_users: int = field(500, "test users", ge=1)
    batch_size: int = field(20, "trajectories per update", ge=1)
    buffer_capacity: int = field(10_000, "replay capacity in trajectories", ge=1)
    save_every: int = default(LoopConfig, "save_every", 1000, "write last.pt every N iterations besides validations (includes the replay buffer)")
    hp: AgentConfig = field(default_factory=AgentConfig, help="agent hyperparameters")
    gems: GeMSConfig = field(default_factory=GeMSConfig, help="GeMS architecture and loss")
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, help="GeMS pretraining (when no checkpoint is given)")
    gems_checkpoint: str = field("", "pretrained GeMS (.pt from `rl4rec slate pretrain`); empty pretrains inline")
    init_from: str = field("", "a `slate pretrain` run folder whose ranker this run uses: its gems.pt (ranker=gems) or mf_<env>.npy (topk_mf); a sweep's init_from sets it")
    gems_cache: str = field("", "folder of pretrained GeMS shared by runs, keyed by all pretraining reads: a run loads its GeMS from there or pretrains and adds it (empty: always pretrain)")
    compile: bool = field(False, "torch.compile each episode turn (simulator; SAC's belief, policy and ranker); eager is the reference")

    def check(self) -> None:
        super().check()
        if self.mixed_precision != "no":
            raise ConfigError("mixed_precision: slate training computes in fp32 only; use mixed_precision=no")
        if self.ranker not in AGENT_RANKERS[self.agent]:
            raise ConfigError(f"ranker: agent {self.agent!r} works with {', '.join(AGENT_RANKERS[self.agent])}, not {self.ranker!r}")
        check_env_key(self.env)
        if self.init_from and self.ranker not in ("gems", "topk_mf"):
            raise ConfigError(f"init_from: a pretrained ranker run feeds ranker=gems or topk_mf, not {self.ranker!r}")
        if self.init_from and (self.gems_checkpoint or self.mf_embeddings):
            raise ConfigError("init_from: give the pretraining run or gems_checkpoint / mf_embeddings, not both")
        if (self.gems_checkpoint or (self.init_from and self.ranker == "gems")) and self.gems_cache:
            raise ConfigError("gems_cache: this run is given a pretrained GeMS (gems_checkpoint or init_from); give one or the cache, not both")

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)


# --------------------------------------------------------------------------- building


def make_sim(cfg: SlateTrainConfig, device: torch.device | str = "cpu"):
    overrides = {"catalogue": cfg.embeddings} if cfg.embeddings else {}
    return TopicRecSimulator(variant_config(cfg.env, mode=cfg.env_mode, **overrides), device=device)


def _mf_table(cfg: SlateTrainConfig) -> torch.Tensor:
    """MF item factors: ``mf_embeddings`` or the released ``slate/<env>.npy`` of the shared data."""
    from rl4rec.slate.env.embeddings import data_dir_candidates

    if cfg.init_from:
        path = Path(cfg.init_from) / f"mf_{cfg.env}.npy"
    elif cfg.mf_embeddings:
        path = Path(cfg.mf_embeddings)
    else:
        found = [d / f"{cfg.env}.npy" for d in data_dir_candidates() if (d / f"{cfg.env}.npy").is_file()]
        if not found:
            raise FileNotFoundError(
                f"released MF factors {cfg.env}.npy not found; train them with `rl4rec slate pretrain --ranker mf` and set mf_embeddings="
            )
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"MF embeddings {path} not found; train them with `rl4rec slate pretrain --ranker mf`")
    table = np.load(path, allow_pickle=False)
    return torch.from_numpy(table.astype(np.float32))


def build_gems(
    cfg: SlateTrainConfig, sim, seeds, *, log_fn=None, logs_dir: Path | None = None, skeleton: bool = False, check_stop=None
) -> tuple[GeMS, torch.Tensor, torch.Tensor]:
    """Load a pretrained GeMS, or pretrain one per seed on freshly generated logged data (on the
    simulator's device; the logged data itself is always generated on the CPU, the same everywhere)."""
    gems = GeMS(seeds, sim.num_items, sim.rec_size, cfg.gems).to(sim.device)
    if skeleton:  # weights and action box come from an agent checkpoint loaded afterwards
        return gems, torch.zeros(len(seeds), cfg.gems.latent_dim), torch.ones(len(seeds), cfg.gems.latent_dim)
    from rl4rec.slate.rankers import gems_cache

    if cfg.gems_checkpoint or cfg.init_from:
        from rl4rec.slate.pretrain import checkpoint_path

        center, scale, _ = gems_cache.load_gems(checkpoint_path(cfg.gems_checkpoint or cfg.init_from), gems, seeds)
        return gems, center, scale
    from rl4rec.slate.logs import cached_logs

    if logs_dir is None:
        raise ValueError("build_gems needs logs_dir to pretrain inline")
    if cfg.gems_cache:
        inputs = gems_cache.cache_inputs(sim, cfg.gems, cfg.pretrain, seeds)
        path = gems_cache.cache_path(cfg.gems_cache, inputs)
        hit = gems_cache.load_cached(path, gems, seeds, log_fn)
        if hit is not None:
            return gems, *hit
    logs = cached_logs(logs_dir, sim.config, cfg.pretrain.sessions, seed=cfg.pretrain.logs_seed, progress=cfg.progress)
    history, center, scale = pretrain_on_logs(gems, logs, cfg.pretrain, seed=seeds[0], log_fn=log_fn, progress=cfg.progress, check_stop=check_stop)
    if cfg.gems_cache:
        gems_cache.save_cached(path, gems, center, scale, history, inputs)
    return gems, center, scale


def build_agent(
    cfg: SlateTrainConfig, sim, seeds, *, log_fn=None, logs_dir: Path | None = None, skeleton: bool = False, check_stop=None
):
    """The agent of ``cfg`` for ``seeds`` on the simulator's device (initialised on the CPU, so a
    seed starts from the same weights everywhere); ``skeleton`` skips GeMS pretraining (weights
    loaded later)."""
    s, n, k = len(seeds), sim.num_items, sim.rec_size
    if cfg.agent in ("random", "sto"):
        agent = ReferenceAgent(cfg.agent, s, n, k, seeds[0])
    elif cfg.agent == "reinforce":
        agent = ReinforceAgent(seeds, cfg.hp, n, k)
    elif cfg.agent == "slateq":
        agent = SlateQAgent(seeds, cfg.hp, sim, n, k)
    elif cfg.ranker == "wknn":
        agent = WkNNAgent(seeds, cfg.hp, n, k, fixed=cfg.hp.fix_wknn, table=_mf_table(cfg) if cfg.hp.fix_wknn else None)
    else:
        if cfg.ranker == "gems":
            ranker, center, scale = build_gems(cfg, sim, seeds, log_fn=log_fn, logs_dir=logs_dir, skeleton=skeleton, check_stop=check_stop)
            ranker.requires_grad_(False)
        else:
            ranker = TopK(sim.item_embeddings.cpu() if cfg.ranker == "topk_ideal" else _mf_table(cfg), k)
            center, scale = ranker.bounds(s)
        agent = SACAgent(seeds, cfg.hp, ranker, center, scale, n, k)
    return agent.to_device(sim.device)


# --------------------------------------------------------------------------- users


class UserStreams:
    """Which users each phase sees (spec §1.12).

    Faithful: one stream; training episode users and validation users are consumed in order from
    a cursor (each train step takes 1, each validation 200), and test users are the first 500 of
    the stream. With ``disjoint_test_users`` the simulator keeps separate train/val/test streams.
    """

    def __init__(self, disjoint: bool):
        self.disjoint, self.cursor, self.val_cursor = disjoint, 0, 0

    def train(self) -> tuple[torch.Tensor, str]:
        ids = torch.tensor([self.cursor])
        self.cursor += 1
        return ids, "train"

    def val(self, n: int) -> tuple[torch.Tensor, str]:
        if self.disjoint:
            ids = torch.arange(self.val_cursor, self.val_cursor + n)
            self.val_cursor += n
            return ids, "val"
        ids = torch.arange(self.cursor, self.cursor + n)
        self.cursor += n
        return ids, "train"

    @staticmethod
    def test(n: int) -> tuple[torch.Tensor, str]:
        return torch.arange(n), "test"

    def state(self) -> list[int]:
        return [self.cursor, self.val_cursor]


# --------------------------------------------------------------------------- protocol


def evaluate(agent, sim, streams_ids: tuple[torch.Tensor, str], num_members: int) -> torch.Tensor:
    """Mean return per member (S,) of the deterministic policy on the given users."""
    ids, population = streams_ids
    returns, _ = run_episodes(agent, sim, ids, num_members, population=population, deterministic=True)
    return returns.mean(1)


def _on_device(method):
    """Run a task method with the run's device as the default one of tensor factories."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with default_device(self.device):
            return method(self, *args, **kwargs)

    return wrapped


class SlateTask(Task):
    """One step = one episode per seed + one update; each seed keeps its own best parameters.

    Everything lives on the run's device: simulator, agent, replay buffer and generators; the
    episode loop and the agents create their tensors through the default device (``_on_device``).
    """

    def __init__(self, cfg: SlateTrainConfig, run, dev):
        self.cfg, self.run, self.device = cfg, run, dev.device
        self.seeds = seeds = cfg.seed_list
        s = len(seeds)
        self.sim = sim = make_sim(cfg, self.device)
        # resuming: GeMS weights and action box come with the agent state, so it is not pretrained again
        self.agent = agent = build_agent(cfg, sim, seeds, log_fn=run.log_metrics, logs_dir=run.dir / "logs", check_stop=run.check_stop,
                                         skeleton=run.resume_state is not None)
        if cfg.compile:  # compiled on first use: the first episode (and first validation) pay for it
            sim.compile_turns()
            agent.compile_turns()
        self.streams = UserStreams(sim.fixes.disjoint_test_users)
        self.learns = cfg.agent not in ("random", "sto")
        self.buffer = None
        with default_device(self.device):
            if self.learns:
                cap = 1 if agent.on_policy else cfg.buffer_capacity
                self.buffer = TrajectoryBuffer(
                    s, cap, sim.episode_length, sim.rec_size, agent.action_shape, agent.action_dtype, sim.item_embeddings.shape[1] if agent.needs_users else 0
                )
            self.sample_gen = torch.Generator(device=self.device).manual_seed(seeds[0] + 7)
            self.best_val = torch.full((s,), -float("inf"))
        self.best_state = copy.deepcopy(agent.state_dict())
        self.total_steps = cfg.steps if self.learns else 0
        self.eval_every = cfg.eval_every
        self.name, self.select_key = f"{cfg.agent}+{cfg.ranker} {cfg.env}", "eval/return"

    @_on_device
    def train_step(self, step: int) -> dict[str, float]:
        cfg, agent, it = self.cfg, self.agent, step - 1
        ids, population = self.streams.train()
        returns, traj = run_episodes(
            agent, self.sim, ids, len(self.seeds), population=population, deterministic=False, random_phase=it < cfg.random_steps, iteration=it, record=True
        )
        self.buffer.add(traj)
        metrics = {"train/return": returns.mean().item()}
        batch_size = 1 if agent.on_policy else cfg.batch_size
        if agent.should_update(it, cfg.random_steps, self.buffer.size, batch_size):
            metrics.update(agent.update(self.buffer.sample(batch_size, self.sample_gen), it))
        return metrics

    @_on_device
    def validate(self, step: int) -> dict[str, float]:
        self._val = val = evaluate(self.agent, self.sim, self.streams.val(self.cfg.val_users), len(self.seeds))
        return {"eval/return": val.mean().item(), **{f"eval/return_seed{sd}": float(v) for sd, v in zip(self.seeds, val, strict=True)}}

    def select(self, metrics: dict[str, float], best: float) -> bool:
        """Each seed keeps the parameters of its own best validation; a new best for any seed counts."""
        improved = self._val > self.best_val
        self.best_state = select_members(improved, self.agent.state_dict(), self.best_state)
        self.best_val = torch.maximum(self.best_val, self._val)
        return bool(improved.any())

    def state_dict(self) -> dict[str, Any]:
        agent = self.agent
        return {
            "agent": agent.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in agent.optimizers().items()},
            "best_val": self.best_val,
            "best_state": self.best_state,
            "streams": self.streams.state(),
            "sample_gen": self.sample_gen.get_state(),
            "generators": {k: g.get_state() for k, g in agent.generators().items()},
            "buffer": self.buffer.state_dict() if self.buffer is not None else {},
            "updates": getattr(agent, "updates", 0),
            "seeds": list(self.seeds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        agent = self.agent
        agent.load_state_dict(state["agent"])
        for name, opt in agent.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        self.best_val = state["best_val"].to(self.device)
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}
        self.streams.cursor, self.streams.val_cursor = state["streams"]
        self.sample_gen.set_state(state["sample_gen"])
        for name, g in agent.generators().items():
            g.set_state(state["generators"][name])
        if self.buffer is not None:
            self.buffer.load_state_dict(state["buffer"])
        if hasattr(agent, "updates"):
            agent.updates = int(state.get("updates", 0))

    @_on_device
    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        if self.learns:
            self.agent.load_state_dict(self.best_state)
        test = evaluate(self.agent, self.sim, self.streams.test(self.cfg.test_users), len(self.seeds))
        result = test_result(self.seeds, test, self.cfg)
        self.run.log_metrics({"test/return": result["test/return"]}, max(self.total_steps, 1))
        log.info("test return %s", result["test/return_ci"])
        return result


def train_slate(cfg: SlateTrainConfig) -> dict[str, Any] | None:
    """Train, validate, select and test; returns test results (per seed and mean ± CI)."""
    return fit(cfg, lambda run, dev: SlateTask(cfg, run, dev), key_metric="test/return")


def test_result(seeds, test: torch.Tensor, cfg: SlateTrainConfig) -> dict[str, Any]:
    ci = mean_ci(test.tolist()) if len(seeds) > 1 else None
    return {
        "test/return": float(test.mean()),
        "test/return_ci": ci.format() if ci else f"{float(test.mean()):.4g}",
        "test/return_per_seed": {str(sd): float(v) for sd, v in zip(seeds, test, strict=True)},
        "test_users": cfg.test_users,
        "env_mode": cfg.env_mode,
    }


@dataclass(frozen=True)
class SlateTestConfig(DeviceConfig):
    """Re-test of a finished run's best checkpoint (``rl4rec slate test RUN [key=value ...]``)."""

    run: str = field("", "the run: folder, EXPERIMENT/NAME or a unique run name under runs_dir")
    users: int = field(0, "test users (0 = the run's own test_users)", ge=0)

    def check(self) -> None:
        super().check()
        if not self.run:
            raise ConfigError("run: name the run to re-test (rl4rec slate test RUN)")
        if self.mixed_precision != "no":
            raise ConfigError("mixed_precision: slate episodes compute in fp32 only; use mixed_precision=no")


def retest(cfg: SlateTestConfig) -> dict[str, Any]:
    from rl4rec.devices import resolve_device
    from rl4rec.runs import find_run
    from rl4rec.seeding import apply_threads

    apply_threads(cfg.threads)
    return retest_run(find_run(Path(cfg.runs_dir), cfg.run), cfg.users or None, device=resolve_device(cfg.device))


def retest_run(run_dir: Path, users: int | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Re-test a run's best checkpoint on the test users (``rl4rec slate test RUN``)."""
    from rl4rec.config import replace
    from rl4rec.runs import RunDir, atomic_write_text, config_of, load_checkpoint

    cfg = config_of(SlateTrainConfig, run_dir)
    cfg = cfg if users is None else replace(cfg, test_users=users)
    seeds = cfg.seed_list
    sim = make_sim(cfg, device)
    agent = build_agent(cfg, sim, seeds, skeleton=True)
    if cfg.agent not in ("random", "sto"):
        best = RunDir(run_dir).checkpoint("best")
        if not best.exists():
            raise FileNotFoundError(f"{best} not found: the run has not validated yet")
        agent.load_state_dict(load_checkpoint(best)["task"]["best_state"])
    with default_device(device):
        test = evaluate(agent, sim, UserStreams.test(cfg.test_users), len(seeds))
    result = {**test_result(seeds, test, cfg), "devices": {"device": str(torch.device(device)), "processes": 1, "mixed_precision": "no"}}
    atomic_write_text(run_dir / "retest_results.json", json.dumps(result, indent=2))
    return result
