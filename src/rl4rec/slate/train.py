"""``rl4rec slate train``: the paper's protocol (spec slate_rl.md §7) for one or many seeds at once.

One step = one 100-turn episode per seed + one gradient update on a batch of 20 stored
trajectories; random actions for the first ``random_steps``; validation every ``val_every`` steps
on ``val_users`` users with the deterministic policy; each seed's best-validation parameters are
tested on ``test_users`` test users. ``seeds=[a, b, ...]`` trains those seeds in one process with
stacked networks; results are reported per seed.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field
from rl4rec.metrics.stats import mean_ci
from rl4rec.progress import track
from rl4rec.slate.agents import AgentConfig, ReferenceAgent, ReinforceAgent, SACAgent, SlateQAgent, WkNNAgent
from rl4rec.slate.buffer import TrajectoryBuffer
from rl4rec.slate.loop import run_episodes
from rl4rec.slate.rankers import GeMS, GeMSConfig, TopK
from rl4rec.slate.rankers.pretrain import PretrainConfig, pretrain_gems

log = logging.getLogger(__name__)

AGENT_RANKERS = {
    "sac": ("gems", "topk_ideal", "topk_mf", "wknn"),
    "reinforce": ("softmax",),
    "slateq": ("none",),
    "random": ("none",),
    "sto": ("none",),
}


@dataclass(frozen=True)
class SlateTrainConfig(RunConfig):
    """Slate RL training under the GeMS paper's protocol."""

    NAME_KEYS = ("agent", "ranker", "env")

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
    val_every: int = field(1000, "validate every N iterations", ge=1)
    val_users: int = field(200, "validation users", ge=1)
    test_users: int = field(500, "test users", ge=1)
    batch_size: int = field(20, "trajectories per update", ge=1)
    buffer_capacity: int = field(10_000, "replay capacity in trajectories", ge=1)
    checkpoint_every: int = field(1000, "write last.pt every N iterations (includes the replay buffer)", ge=1)
    hp: AgentConfig = field(default_factory=AgentConfig, help="agent hyperparameters")
    gems: GeMSConfig = field(default_factory=GeMSConfig, help="GeMS architecture and loss")
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, help="GeMS pretraining (when no checkpoint is given)")
    gems_checkpoint: str = field("", "pretrained GeMS (.pt from `rl4rec slate pretrain`); empty pretrains inline")

    def check(self) -> None:
        super().check()
        if self.ranker not in AGENT_RANKERS[self.agent]:
            raise ConfigError(f"ranker: agent {self.agent!r} works with {', '.join(AGENT_RANKERS[self.agent])}, not {self.ranker!r}")
        from rl4rec.slate.env.config import check_env_name

        try:
            check_env_name(self.env)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"env: {err}") from err

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)


# --------------------------------------------------------------------------- building


def make_sim(cfg: SlateTrainConfig):
    from rl4rec.slate.env.config import variant_config
    from rl4rec.slate.env.simulator import TopicRecSimulator

    overrides = {"catalogue": cfg.embeddings} if cfg.embeddings else {}
    return TopicRecSimulator(variant_config(cfg.env, mode=cfg.env_mode, **overrides))


def _mf_table(cfg: SlateTrainConfig) -> torch.Tensor:
    """MF item factors: ``mf_embeddings`` or the released ``slate/<env>.npy`` of the shared data."""
    from rl4rec.slate.env.embeddings import data_dir_candidates

    if cfg.mf_embeddings:
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
    """Load a pretrained GeMS, or pretrain one per seed on freshly generated logged data."""
    gems = GeMS(seeds, sim.num_items, sim.rec_size, cfg.gems)
    if skeleton:  # weights and action box come from an agent checkpoint loaded afterwards
        return gems, torch.zeros(len(seeds), cfg.gems.latent_dim), torch.ones(len(seeds), cfg.gems.latent_dim)
    if cfg.gems_checkpoint:
        from rl4rec.runs import load_checkpoint
        from rl4rec.slate.pretrain import checkpoint_path

        state = load_checkpoint(checkpoint_path(cfg.gems_checkpoint))
        if state["seeds"] != list(seeds):
            raise ValueError(f"GeMS checkpoint was trained for seeds {state['seeds']}, this run needs {list(seeds)}")
        gems.load_state_dict(state["gems"])
        return gems, state["center"], state["scale"]
    from rl4rec.slate.logs import generate_logs, load_logs

    if logs_dir is None:
        raise ValueError("build_gems needs logs_dir to pretrain inline")
    if (logs_dir / "meta.json").exists():
        logs = load_logs(logs_dir, env=cfg.env)
    else:
        logs = generate_logs(sim.config, cfg.pretrain.sessions, logs_dir, seed=cfg.pretrain.logs_seed, progress=cfg.progress, overwrite=True)
    slates, clicks = torch.from_numpy(logs.slates.astype(np.int64)), torch.from_numpy(logs.clicks.astype(np.float32))
    pretrain_gems(gems, slates, clicks, cfg.pretrain, seed=seeds[0], log_fn=log_fn, progress=cfg.progress, check_stop=check_stop)
    m = min(cfg.pretrain.bounds_sessions, slates.shape[0])
    k = slates.shape[-1]
    s = len(seeds)
    center, scale = gems.action_bounds(slates[:m].reshape(1, -1, k).expand(s, -1, -1), clicks[:m].reshape(1, -1, k).expand(s, -1, -1))
    return gems, center, scale


def build_agent(
    cfg: SlateTrainConfig, sim, seeds, *, log_fn=None, logs_dir: Path | None = None, skeleton: bool = False, check_stop=None
):
    """The agent of ``cfg`` for ``seeds``; ``skeleton`` skips GeMS pretraining (weights loaded later)."""
    s, n, k = len(seeds), sim.num_items, sim.rec_size
    if cfg.agent in ("random", "sto"):
        return ReferenceAgent(cfg.agent, s, n, k, seeds[0])
    if cfg.agent == "reinforce":
        return ReinforceAgent(seeds, cfg.hp, n, k)
    if cfg.agent == "slateq":
        return SlateQAgent(seeds, cfg.hp, sim, n, k)
    if cfg.ranker == "wknn":
        return WkNNAgent(seeds, cfg.hp, n, k, fixed=cfg.hp.fix_wknn, table=_mf_table(cfg) if cfg.hp.fix_wknn else None)
    if cfg.ranker == "gems":
        ranker, center, scale = build_gems(cfg, sim, seeds, log_fn=log_fn, logs_dir=logs_dir, skeleton=skeleton, check_stop=check_stop)
        ranker.requires_grad_(False)
    else:
        table = sim.item_embeddings if cfg.ranker == "topk_ideal" else _mf_table(cfg)
        ranker = TopK(table, k)
        center, scale = ranker.bounds(s)
    return SACAgent(seeds, cfg.hp, ranker, center, scale, n, k)


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


def _member_slice(state: dict[str, torch.Tensor], mask: torch.Tensor, into: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy the parameters of the members in ``mask`` from ``state`` into ``into`` (leading dim S)."""
    out = {}
    for key, value in state.items():
        if value.dim() == 0 or value.shape[0] != mask.shape[0]:
            out[key] = value.clone()
        else:
            m = mask.view(-1, *([1] * (value.dim() - 1)))
            out[key] = torch.where(m, value, into[key])
    return out


def evaluate(agent, sim, streams_ids: tuple[torch.Tensor, str], num_members: int) -> torch.Tensor:
    """Mean return per member (S,) of the deterministic policy on the given users."""
    ids, population = streams_ids
    returns, _ = run_episodes(agent, sim, ids, num_members, population=population, deterministic=True)
    return returns.mean(1)


def train_slate(cfg: SlateTrainConfig) -> dict[str, Any]:
    """Train, validate, select and test; returns test results (per seed and mean ± CI)."""
    from rl4rec.runs import Run

    seeds = cfg.seed_list
    s = len(seeds)
    with Run(cfg, key_metric="test/return") as run:
        sim = make_sim(cfg)
        agent = build_agent(cfg, sim, seeds, log_fn=run.log_metrics, logs_dir=run.dir / "logs", check_stop=run.check_stop)
        streams = UserStreams(sim.fixes.disjoint_test_users)
        learns = cfg.agent not in ("random", "sto")
        buffer = None
        if learns:
            cap, batch = (1, 1) if agent.on_policy else (cfg.buffer_capacity, cfg.batch_size)
            buffer = TrajectoryBuffer(
                s, cap, sim.episode_length, sim.rec_size, agent.action_shape, agent.action_dtype, sim.item_embeddings.shape[1] if agent.needs_users else 0
            )
        sample_gen = torch.Generator().manual_seed(seeds[0] + 7)
        best_val = torch.full((s,), -float("inf"))
        best_state = copy.deepcopy(agent.state_dict())
        start = 0
        if run.resume_state is not None:
            rs = run.resume_state
            agent.load_state_dict(rs["agent"])
            for name, opt in _optimizers(agent).items():
                opt.load_state_dict(rs["optimizers"][name])
            best_val, best_state = rs["best_val"], rs["best_state"]
            streams.cursor, streams.val_cursor = rs["streams"]
            sample_gen.set_state(rs["sample_gen"])
            for name, g in _generators(agent).items():
                g.set_state(rs["generators"][name])
            if buffer is not None:
                _load_buffer(buffer, rs["buffer"])
            if hasattr(agent, "updates"):
                agent.updates = int(rs.get("updates", 0))
            start = run.start_step

        def checkpoint(step: int, best: bool = False) -> None:
            state = {
                "agent": agent.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in _optimizers(agent).items()},
                "best_val": best_val,
                "best_state": best_state,
                "streams": streams.state(),
                "sample_gen": sample_gen.get_state(),
                "generators": {k: g.get_state() for k, g in _generators(agent).items()},
                "buffer": _dump_buffer(buffer) if buffer is not None else {},
                "updates": getattr(agent, "updates", 0),
                "seeds": list(seeds),
            }
            run.save_checkpoint(state, step, best=best)

        t0, steps_done = time.perf_counter(), 0
        total = cfg.steps if learns else 0
        for it in track(range(start, total), desc=f"{cfg.agent}+{cfg.ranker} {cfg.env}", enabled=cfg.progress, unit="step"):
            if run.stop_requested:
                checkpoint(it)
                run.check_stop()
            random_phase = it < cfg.random_steps
            ids, population = streams.train()
            returns, traj = run_episodes(
                agent, sim, ids, s, population=population, deterministic=False, random_phase=random_phase, iteration=it, record=True
            )
            buffer.add(traj.slates[:, 0], traj.clicks[:, 0], traj.actions[:, 0], traj.rewards[:, 0], traj.step_clicks[:, 0], None if traj.users is None else traj.users[:, 0])
            metrics = {"train/return": returns.mean().item()}
            batch_size = 1 if agent.on_policy else cfg.batch_size
            if agent.should_update(it, cfg.random_steps, buffer.size, batch_size):
                metrics.update(agent.update(buffer.sample(batch_size, sample_gen), it))
            steps_done += 1
            step = it + 1
            if step % cfg.tracking.log_every == 0:
                metrics["perf/steps_per_s"] = steps_done / (time.perf_counter() - t0)
                run.log_metrics(metrics, step)
            if step % cfg.val_every == 0 or step == total:
                val = evaluate(agent, sim, streams.val(cfg.val_users), s)
                improved = val > best_val
                best_state = _member_slice(agent.state_dict(), improved, best_state)
                best_val = torch.maximum(best_val, val)
                run.log_metrics({"eval/return": val.mean().item(), **{f"eval/return_seed{sd}": float(v) for sd, v in zip(seeds, val, strict=True)}}, step)
                log.info("step %d validation return %s", step, ", ".join(f"{v:.1f}" for v in val.tolist()))
                checkpoint(step, best=bool(improved.any()))
            elif step % cfg.checkpoint_every == 0:
                checkpoint(step)
        if learns:
            agent.load_state_dict(best_state)
        test = evaluate(agent, sim, streams.test(cfg.test_users), s)
        result = test_result(seeds, test, cfg)
        run.log_metrics({"test/return": result["test/return"]}, max(total, 1))
        run.write_result("test_results.json", result)
        log.info("test return %s", result["test/return_ci"])
        return result


def test_result(seeds, test: torch.Tensor, cfg: SlateTrainConfig) -> dict[str, Any]:
    ci = mean_ci(test.tolist()) if len(seeds) > 1 else None
    return {
        "test/return": float(test.mean()),
        "test/return_ci": ci.format() if ci else f"{float(test.mean()):.4g}",
        "test/return_per_seed": {str(sd): float(v) for sd, v in zip(seeds, test, strict=True)},
        "test_users": cfg.test_users,
        "env_mode": cfg.env_mode,
    }


def _optimizers(agent) -> dict[str, torch.optim.Optimizer]:
    return {name: value for name, value in vars(agent).items() if isinstance(value, torch.optim.Optimizer)}


def _generators(agent) -> dict[str, torch.Generator]:
    return {name: value for name, value in vars(agent).items() if isinstance(value, torch.Generator)}


def _dump_buffer(buffer: TrajectoryBuffer) -> dict[str, Any]:
    n = buffer.size
    out = {"size": n, "next": buffer._next}
    for name in ("slates", "clicks", "step_clicks", "actions", "rewards", "users"):
        value = getattr(buffer, name)
        if value is not None:
            out[name] = value[:, :n].clone()
    return out


def _load_buffer(buffer: TrajectoryBuffer, state: dict[str, Any]) -> None:
    n = state["size"]
    for name in ("slates", "clicks", "step_clicks", "actions", "rewards", "users"):
        if name in state:
            getattr(buffer, name)[:, :n] = state[name]
    buffer.size, buffer._next = n, state["next"]


def retest_run(run_dir: Path, users: int | None = None) -> dict[str, Any]:
    """Re-test a run's best checkpoint on the test users (``rl4rec slate test RUN``)."""
    from rl4rec.runs import atomic_write_text, config_of, load_checkpoint

    cfg = config_of(SlateTrainConfig, run_dir)
    if users is not None:
        from rl4rec.config import replace

        cfg = replace(cfg, test_users=users)
    seeds = cfg.seed_list
    sim = make_sim(cfg)
    agent = build_agent(cfg, sim, seeds, skeleton=True)
    if cfg.agent not in ("random", "sto"):
        best = run_dir / "checkpoints" / "best.pt"
        if not best.exists():
            raise FileNotFoundError(f"{best} not found: the run has not validated yet")
        agent.load_state_dict(load_checkpoint(best)["best_state"])
    test = evaluate(agent, sim, UserStreams.test(cfg.test_users), len(seeds))
    result = test_result(seeds, test, cfg)
    import json

    atomic_write_text(run_dir / "retest_results.json", json.dumps(result, indent=2))
    return result
