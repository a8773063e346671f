"""Gymnasium front-ends: registration, env checker, vector API with next-step autoreset."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rl4rec.slate  # noqa: F401  (registers the environments)
from rl4rec.slate.gym_env import TopicRecVectorEnv, env_id


@pytest.fixture(autouse=True)
def _data(shared_data, monkeypatch):
    monkeypatch.setenv("RL4REC_SHARED_DATA", str(shared_data))


def test_all_six_variants_are_registered():
    for variant in ("focused_topdown", "focused_mix", "focused_divpen", "diffuse_topdown", "diffuse_mix", "diffuse_divpen"):
        assert env_id(variant) in gymnasium.registry


def test_single_env_passes_the_env_checker():
    env = gymnasium.make("rl4rec/TopicRec-focused_divpen-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs["slate"].tolist() == [78, 575, 163, 145, 599, 6, 200, 279, 850, 225]


def test_vector_env_api_and_autoreset():
    envs = gymnasium.make_vec("rl4rec/TopicRec-focused_topdown-v0", num_envs=4)
    assert isinstance(envs.unwrapped, TopicRecVectorEnv)
    assert envs.num_envs == 4 and envs.single_action_space.shape == (10,)
    obs, info = envs.reset(seed=7)
    assert envs.observation_space.contains(obs) and info["user_state"].shape == (4, 20)
    first_users = info["user_state"].copy()
    envs.action_space.seed(0)
    total = np.zeros(4)
    for t in range(100):
        actions = np.full((4, 10), -1) if t % 2 else envs.action_space.sample()
        obs, reward, terminated, truncated, info = envs.step(actions)
        assert envs.observation_space.contains(obs) and not truncated.any()
        assert terminated.all() == (t == 99)
        total += reward
    assert (total > 0).all()
    # next-step autoreset: the actions are ignored, the new users' reset observation comes back
    obs, reward, terminated, truncated, info = envs.step(np.zeros((4, 10), dtype=np.int64))
    assert (reward == 0).all() and not terminated.any()
    assert not np.allclose(info["user_state"], first_users)  # next users of the stream
    _, info = envs.reset(seed=7)
    np.testing.assert_array_equal(info["user_state"], first_users)  # same seed, same users
    with pytest.raises(ValueError, match="out of range"):
        envs.step(np.full((4, 10), 1000))
