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
        actions = np.full((4, 10), 1000) if t % 2 else envs.action_space.sample()  # id N = the oracle
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
        envs.step(np.full((4, 10), 1001))


def test_action_space_is_zero_based_with_the_oracle_as_id_n_and_minus_one_on_request():
    default = gymnasium.make("rl4rec/TopicRec-focused_topdown-v0")
    assert default.action_space.start.tolist() == [0] * 10 and default.action_space.nvec.tolist() == [1001] * 10
    legacy = gymnasium.make("rl4rec/TopicRec-focused_topdown-v0", oracle_slot="minus_one")
    assert legacy.action_space.start.tolist() == [-1] * 10
    items_only = gymnasium.make("rl4rec/TopicRec-focused_topdown-v0", oracle_slot="none")
    assert items_only.action_space.nvec.tolist() == [1000] * 10
    # id N in the default space and -1 in the legacy one are the same oracle slot: same users, same slates
    default.reset(seed=5)
    legacy.reset(seed=5)
    slate = np.array([3, 1000, 7, 1000, 1000, 11, 12, 1000, 14, 1000])
    a, ra, *_ = default.step(slate)
    b, rb, *_ = legacy.step(np.where(slate == 1000, -1, slate))
    np.testing.assert_array_equal(a["slate"], b["slate"])
    assert ra == rb and a["slate"][0] == 3 and a["slate"][1] != 1000  # the oracle filled slot 1 with an item


def test_gems_latent_action_wrapper_decodes_box_actions_into_item_slates(tmp_path):
    import torch

    from rl4rec.runs import atomic_torch_save
    from rl4rec.slate.gym_env import GeMSAction
    from rl4rec.slate.rankers import GeMS, GeMSConfig

    gems = GeMS([3], 1000, 10, GeMSConfig(latent_dim=8))
    center, scale = torch.zeros(1, 8), torch.ones(1, 8)
    atomic_torch_save({"gems": gems.state_dict(), "center": center, "scale": scale, "seeds": [3], "env": "focused_topdown"}, tmp_path / "gems.pt")
    env = GeMSAction(gymnasium.make("rl4rec/TopicRec-focused_topdown-v0"), str(tmp_path / "gems.pt"), gems=GeMSConfig(latent_dim=8))
    assert env.action_space.shape == (8,) and env.action_space.dtype == np.float32
    env.reset(seed=1)
    a = np.linspace(-1, 1, 8, dtype=np.float32)
    expected = gems.rank(torch.from_numpy(a).reshape(1, 1, 8))[0, 0].numpy()
    np.testing.assert_array_equal(env.action(a), expected)  # GeMS's argmax slate of z = center + scale * a
    obs, reward, *_ = env.step(a)
    np.testing.assert_array_equal(obs["slate"], expected)
    assert reward >= 0


def test_an_off_the_shelf_ppo_trains_on_the_registered_env_without_a_user_wrapper():
    """stable-baselines3's PPO, as a new user would run it: the registered id, no wrapper."""
    sb3 = pytest.importorskip("stable_baselines3", reason="install rl4rec[sb3]")
    import torch

    model = sb3.PPO("MultiInputPolicy", "rl4rec/TopicRec-focused_topdown-v0", n_steps=100, batch_size=50, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=300)  # three episodes of 100 turns, three updates
    assert model.num_timesteps >= 300
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    env = model.get_env()
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action[0])
