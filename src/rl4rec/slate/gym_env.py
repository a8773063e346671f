"""Gymnasium front-ends of the TopicRec simulator, registered as ``rl4rec/TopicRec-<variant>-v0``.

``gymnasium.make_vec(id, num_envs=B)`` builds :class:`TopicRecVectorEnv` (B users stepped as one
batch by the tensor simulator, next-step autoreset); ``gymnasium.make(id)`` builds the one-user
:class:`TopicRecEnv` (for ``gymnasium.utils.env_checker.check_env`` and single-env tooling).

Observation: ``{"slate": K item ids, "clicks": K binary}`` of the last turn. Action: K item ids,
where -1 asks the simulator's short-term oracle to fill the slot. ``reset(seed=s)`` selects the
user stream of seed s and restarts it at user 0; later resets continue with the next users.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rl4rec.slate.env.config import POPULATIONS, VARIANTS, TopicRecConfig, variant_config


def _simulator(config: TopicRecConfig, device: str):
    from rl4rec.slate.env.simulator import TopicRecSimulator  # torch is imported on first use only

    return TopicRecSimulator(config, device=device)


def _build_config(config: TopicRecConfig | None, variant: str, mode: str, embeddings: str | None, overrides: dict) -> TopicRecConfig:
    if config is not None:
        if overrides or embeddings:
            raise ValueError("pass either config or variant/mode/embeddings/overrides, not both")
        return config
    if embeddings is not None:
        overrides = {**overrides, "catalogue": str(embeddings)}
    return variant_config(variant, mode=mode, **overrides)


def observation_space(num_items: int, rec_size: int) -> spaces.Dict:
    return spaces.Dict(
        {
            "slate": spaces.MultiDiscrete(np.full(rec_size, num_items, dtype=np.int64)),
            "clicks": spaces.MultiBinary(rec_size),
        }
    )


def action_space(num_items: int, rec_size: int) -> spaces.MultiDiscrete:
    """Ids in [-1, N): -1 = oracle slot (``start=-1`` shifts the MultiDiscrete range)."""
    return spaces.MultiDiscrete(np.full(rec_size, num_items + 1, dtype=np.int64), start=np.full(rec_size, -1, dtype=np.int64))


def _numpy_obs(obs: dict) -> dict[str, np.ndarray]:
    return {"slate": obs["slate"].cpu().numpy().astype(np.int64), "clicks": obs["clicks"].cpu().numpy().astype(np.int8)}


def _numpy_info(info: dict) -> dict[str, np.ndarray]:
    return {k: v.cpu().numpy().copy() for k, v in info.items()}  # fresh arrays: callers may keep them


class _Users:
    """User bookkeeping shared by both front-ends: seed, next user index, population."""

    def __init__(self, sim: Any, population: str) -> None:
        if population not in POPULATIONS:
            raise ValueError(f"population {population!r} is not one of {', '.join(POPULATIONS)}")
        self.sim, self.population, self.seed, self.next_user = sim, population, None, 0

    def reset(self, count: int, seed: int | None, options: dict | None) -> tuple[dict, dict]:
        options = dict(options or {})
        unknown = set(options) - {"user_offset", "population"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: user_offset, population")
        if seed is not None:
            self.seed, self.next_user = int(seed), 0
        self.next_user = int(options.get("user_offset", self.next_user))
        self.population = options.get("population", self.population)
        obs, info = self.sim.reset(count, seed=self.seed, user_offset=self.next_user, population=self.population)
        self.next_user += count
        return obs, info


class TopicRecVectorEnv(VectorEnv):
    """``num_envs`` users stepped together; all end after ``episode_length`` steps (lockstep)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        variant: str = "focused_topdown",
        mode: str = "faithful",
        *,
        config: TopicRecConfig | None = None,
        embeddings: str | None = None,
        population: str = "train",
        device: str = "cpu",
        **overrides: Any,
    ) -> None:
        self.sim = _simulator(_build_config(config, variant, mode, embeddings, overrides), device)
        self.num_envs = int(num_envs)
        n, k = self.sim.num_items, self.sim.rec_size
        self.single_observation_space = observation_space(n, k)
        self.single_action_space = action_space(n, k)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._users = _Users(self.sim, population)
        self._autoreset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._users.reset(self.num_envs, seed, options)
        self._autoreset = False
        return _numpy_obs(obs), _numpy_info(info)

    def step(self, actions):
        if self._autoreset:  # next-step autoreset: this call's actions are ignored
            obs, info = self._users.reset(self.num_envs, None, None)
            self._autoreset = False
            zeros = np.zeros(self.num_envs, dtype=bool)
            return _numpy_obs(obs), np.zeros(self.num_envs), zeros, zeros.copy(), _numpy_info(info)
        obs, reward, done, info = self.sim.step(np.asarray(actions))
        self._autoreset = done
        terminated = np.full(self.num_envs, done, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        return _numpy_obs(obs), reward.cpu().numpy().astype(np.float64), terminated, truncated, _numpy_info(info)


class TopicRecEnv(gymnasium.Env):
    """One simulated user at a time (the batched simulator with B = 1)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        variant: str = "focused_topdown",
        mode: str = "faithful",
        *,
        config: TopicRecConfig | None = None,
        embeddings: str | None = None,
        population: str = "train",
        device: str = "cpu",
        **overrides: Any,
    ) -> None:
        self.sim = _simulator(_build_config(config, variant, mode, embeddings, overrides), device)
        self.observation_space = observation_space(self.sim.num_items, self.sim.rec_size)
        self.action_space = action_space(self.sim.num_items, self.sim.rec_size)
        self._users = _Users(self.sim, population)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._users.reset(1, seed, options)
        return {k: v[0] for k, v in _numpy_obs(obs).items()}, {k: v[0] for k, v in _numpy_info(info).items()}

    def step(self, action):
        obs, reward, done, info = self.sim.step(np.asarray(action).reshape(1, -1))
        obs = {k: v[0] for k, v in _numpy_obs(obs).items()}
        return obs, float(reward[0]), bool(done), False, {k: v[0] for k, v in _numpy_info(info).items()}


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
