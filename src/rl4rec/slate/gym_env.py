"""Gymnasium front-ends of the TopicRec simulator, registered as ``rl4rec/TopicRec-<variant>-v0``.

``gymnasium.make_vec(id, num_envs=B)`` builds :class:`TopicRecVectorEnv` (B users stepped as one
batch by the tensor simulator, next-step autoreset); ``gymnasium.make(id)`` builds the one-user
:class:`TopicRecEnv` (for ``gymnasium.utils.env_checker.check_env`` and single-env tooling).

Observation: ``{"slate": K item ids, "clicks": K binary}`` of the last turn. Action: K ids in
``MultiDiscrete([N + 1] * K)`` starting at 0, the form standard RL libraries assume: ids below N
are items and id N asks the simulator's short-term oracle to fill the slot. ``oracle_slot="minus_one"``
gives rl4rec's own convention (ids in [-1, N), -1 = oracle) and ``"none"`` items only.
:class:`GeMSAction` turns either front-end into a continuous-control one: a ``Box`` latent action
decoded into a slate by a pretrained GeMS. ``reset(seed=s)`` selects the user stream of seed s and
restarts it at user 0; later resets continue with the next users.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rl4rec.slate.env.config import POPULATIONS, VARIANTS, TopicRecConfig, variant_config


def observation_space(num_items: int, rec_size: int) -> spaces.Dict:
    return spaces.Dict(
        {
            "slate": spaces.MultiDiscrete(np.full(rec_size, num_items, dtype=np.int64)),
            "clicks": spaces.MultiBinary(rec_size),
        }
    )


OracleSlot = Literal["last", "minus_one", "none"]


def action_space(num_items: int, rec_size: int, oracle_slot: OracleSlot = "last") -> spaces.MultiDiscrete:
    """K slot ids: [0, N] with N = oracle (``last``), [-1, N) with -1 = oracle (``minus_one``), or [0, N)."""
    if oracle_slot not in ("last", "minus_one", "none"):
        raise ValueError(f"oracle_slot must be last, minus_one or none, not {oracle_slot!r}")
    n = np.full(rec_size, num_items + (oracle_slot != "none"), dtype=np.int64)
    start = np.full(rec_size, -1 if oracle_slot == "minus_one" else 0, dtype=np.int64)
    return spaces.MultiDiscrete(n, start=start)


def to_simulator(actions: Any, num_items: int, oracle_slot: OracleSlot) -> np.ndarray:
    """Slot ids of ``oracle_slot``'s space -> the simulator's (-1 = oracle); out-of-range ids raise there."""
    actions = np.asarray(actions, dtype=np.int64)
    return np.where(actions == num_items, -1, actions) if oracle_slot == "last" else actions


def _numpy_obs(obs: dict) -> dict[str, np.ndarray]:
    return {"slate": obs["slate"].cpu().numpy().astype(np.int64), "clicks": obs["clicks"].cpu().numpy().astype(np.int8)}


def _numpy_info(info: dict) -> dict[str, np.ndarray]:
    return {k: v.cpu().numpy().copy() for k, v in info.items()}  # fresh arrays: callers may keep them


def _first(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: v[0] for k, v in batch.items()}


class _FrontEnd:
    """What both front-ends share: the simulator, its (single-user) spaces, the slot-id convention
    and the user bookkeeping (seed, next user index, population)."""

    def __init__(
        self,
        variant: str = "focused_topdown",
        mode: str = "faithful",
        *,
        config: TopicRecConfig | None = None,
        embeddings: str | None = None,
        population: str = "train",
        device: str = "cpu",
        oracle_slot: OracleSlot = "last",
        **overrides: Any,
    ) -> None:
        if config is not None:
            if overrides or embeddings:
                raise ValueError("pass either config or variant/mode/embeddings/overrides, not both")
        else:
            if embeddings is not None:
                overrides = {**overrides, "catalogue": str(embeddings)}
            config = variant_config(variant, mode=mode, **overrides)
        from rl4rec.slate.env.simulator import TopicRecSimulator  # torch is imported on first use only

        self.sim = TopicRecSimulator(config, device=device)
        self.oracle_slot = oracle_slot
        self.observation_space = observation_space(self.sim.num_items, self.sim.rec_size)
        self.action_space = action_space(self.sim.num_items, self.sim.rec_size, oracle_slot)
        if population not in POPULATIONS:
            raise ValueError(f"population {population!r} is not one of {', '.join(POPULATIONS)}")
        self._population, self._user_seed, self._next_user = population, None, 0

    def _reset_users(self, count: int, seed: int | None, options: dict | None) -> tuple[dict, dict]:
        options = dict(options or {})
        unknown = set(options) - {"user_offset", "population"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: user_offset, population")
        if seed is not None:
            self._user_seed, self._next_user = int(seed), 0
        self._next_user = int(options.get("user_offset", self._next_user))
        self._population = options.get("population", self._population)
        obs, info = self.sim.reset(
            count, seed=self._user_seed, user_offset=self._next_user, population=self._population
        )
        self._next_user += count
        return obs, info


class TopicRecVectorEnv(_FrontEnd, VectorEnv):
    """``num_envs`` users stepped together; all end after ``episode_length`` steps (lockstep).

    The other arguments are those of :class:`TopicRecEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self, num_envs: int = 1, variant: str = "focused_topdown", mode: str = "faithful", **kwargs: Any
    ) -> None:
        super().__init__(variant, mode, **kwargs)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = self.observation_space, self.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._autoreset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._reset_users(self.num_envs, seed, options)
        self._autoreset = False
        return _numpy_obs(obs), _numpy_info(info)

    def step(self, actions):
        if self._autoreset:  # next-step autoreset: this call's actions are ignored
            obs, info = self._reset_users(self.num_envs, None, None)
            self._autoreset = False
            zeros = np.zeros(self.num_envs, dtype=bool)
            return _numpy_obs(obs), np.zeros(self.num_envs), zeros, zeros.copy(), _numpy_info(info)
        obs, reward, done, info = self.sim.step(to_simulator(actions, self.sim.num_items, self.oracle_slot))
        self._autoreset = done
        terminated = np.full(self.num_envs, done, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        return _numpy_obs(obs), reward.cpu().numpy().astype(np.float64), terminated, truncated, _numpy_info(info)


class TopicRecEnv(_FrontEnd, gymnasium.Env):
    """One simulated user at a time (the batched simulator with B = 1)."""

    metadata = {"render_modes": []}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._reset_users(1, seed, options)
        return _first(_numpy_obs(obs)), _first(_numpy_info(info))

    def step(self, action):
        obs, reward, done, info = self.sim.step(to_simulator(action, self.sim.num_items, self.oracle_slot).reshape(1, -1))
        return _first(_numpy_obs(obs)), float(reward[0]), bool(done), False, _first(_numpy_info(info))


class GeMSAction(gymnasium.ActionWrapper):
    """A continuous latent action in ``Box(-1, 1, (d,))``, decoded into a slate by a pretrained GeMS
    (``rl4rec slate pretrain``): ``z = center + scale * a`` (the box of the logged data), then
    the argmax item of each slot, as SAC+GeMS acts (spec §3.4). Works on either front-end."""

    def __init__(self, env: gymnasium.Env, checkpoint: str, *, gems: Any = None, member: int = 0) -> None:
        import torch

        from rl4rec.runs import load_checkpoint
        from rl4rec.slate.pretrain import checkpoint_path
        from rl4rec.slate.rankers import GeMS, GeMSConfig

        super().__init__(env)
        state = load_checkpoint(checkpoint_path(checkpoint))
        sim = env.unwrapped.sim
        self.gems = GeMS(state["seeds"], sim.num_items, sim.rec_size, gems or _gems_config(checkpoint, GeMSConfig))
        self.gems.load_state_dict(state["gems"])
        self.member, self.torch = member, torch
        self.center, self.scale = state["center"][member], state["scale"][member]
        self.oracle_slot = env.unwrapped.oracle_slot
        self.action_space = spaces.Box(-1.0, 1.0, (self.center.numel(),), dtype=np.float32)

    def action(self, action: Any) -> np.ndarray:
        a = self.torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(-1, self.center.numel())
        z = (self.center + self.scale * a.clamp(-1, 1)).unsqueeze(0).expand(self.gems.items.weight.shape[0], -1, -1)
        slates = self.gems.rank(z.contiguous())[self.member].numpy()
        return slates[0] if np.ndim(action) == 1 else slates  # item ids: valid in every oracle_slot space


def _gems_config(checkpoint: str, config_cls: type) -> Any:
    """The GeMS architecture of a pretraining run (its config.yaml's ``gems`` section), else the defaults."""
    from rl4rec.config import from_dict, load_yaml
    from rl4rec.slate.pretrain import checkpoint_path

    run_yaml = checkpoint_path(checkpoint).parent / "config.yaml"  # the run folder, given or holding the .pt
    return from_dict(config_cls, load_yaml(run_yaml).get("gems", {})) if run_yaml.is_file() else config_cls()


def env_id(variant: str) -> str:
    return f"rl4rec/TopicRec-{variant}-v0"


def register_envs() -> None:
    """Register the six variants with gymnasium (idempotent)."""
    for variant in VARIANTS:
        if env_id(variant) in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id(variant),
            entry_point="rl4rec.slate.gym_env:TopicRecEnv",
            vector_entry_point="rl4rec.slate.gym_env:TopicRecVectorEnv",
            kwargs={"variant": variant},
        )
