"""Retrieval service: ranks equal a brute-force cosine search; the Ray actor gives the same rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl4rec.genrec.grpo.rewards import RewardContext, Rollouts, combine_rewards
from rl4rec.genrec.retrieval import RetrievalConfig, RetrievalIndex, make_retrieval
from rl4rec.genrec.sid.text import HashingEncoder


def _brute_force_rank(items: np.ndarray, query: np.ndarray, target: int) -> int:
    cos = [float(np.dot(query, it) / (np.linalg.norm(query) * np.linalg.norm(it))) for it in items]
    order = sorted(range(len(items)), key=lambda i: (-cos[i], i))  # ties: lower id first
    return order.index(target)


def test_target_ranks_match_brute_force():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(40, 6)).astype(np.float32)
    items[7] = items[3]  # a tie
    queries = rng.normal(size=(25, 6)).astype(np.float32)
    targets = rng.integers(0, 40, size=25)
    index = RetrievalIndex(items, batch_size=7)
    ranks = index.target_ranks(torch.from_numpy(queries), targets)
    assert ranks.tolist() == [_brute_force_rank(items, q, int(t)) for q, t in zip(queries, targets, strict=True)]


def test_history_exclusion_and_bad_input():
    items = np.eye(4, dtype=np.float32)
    index = RetrievalIndex(items)
    q = torch.tensor([[1.0, 0.9, 0.0, 0.0]])
    assert index.target_ranks(q, [1]).item() == 1
    assert index.target_ranks(q, [1], histories=[[0]]).item() == 0  # item 0 is in the history
    with pytest.raises(ValueError, match="finite"):
        RetrievalIndex(np.full((3, 2), np.nan))


def _texts_and_rewards(service):
    texts = ["red wool scarf", "blue cotton shirt", "red scarf wool winter"]
    ranks = service.rank_texts(texts, [0, 1, 0])
    roll = Rollouts(torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 0]), torch.tensor([0, 1, 0]), target_ranks=ranks)
    return ranks, combine_rewards(roll, {"ndcg": 1.0}, RewardContext(cutoff=2))[0]


def _wait_until_dead(ray, actor, timeout: float = 30.0) -> None:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ray.get(actor.target_ranks.remote(torch.zeros(1, 64), [0]), timeout=5)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.2)
    raise AssertionError("the killed actor kept answering")


def test_ray_actor_gives_the_same_rewards_as_in_process():
    ray = pytest.importorskip("ray", reason="install rl4rec[ray]")
    catalog = ["red wool scarf", "blue cotton shirt", "green garden hose", "wool socks"]
    enc = HashingEncoder(64)
    item_emb = enc.encode(catalog)
    local = make_retrieval(RetrievalConfig(backend="local"), item_emb, lambda: HashingEncoder(64))
    ranks_local, rewards_local = _texts_and_rewards(local)
    assert ranks_local[0].item() == 0
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024)
    try:
        remote = make_retrieval(RetrievalConfig(backend="ray", actor_name="test-retrieval"), item_emb, lambda: HashingEncoder(64))
        ranks_ray, rewards_ray = _texts_and_rewards(remote)
        assert torch.equal(ranks_ray, ranks_local) and torch.equal(rewards_ray, rewards_local)
        # TRL's reward function through the actor scores as through the local index
        from rl4rec.genrec.trl_interop import TextReward

        texts, targets = ["red scarf", "wool socks", "garden hose", ""], [0, 3, 1, 2]
        args = (["p0", "p0", "p1", "p1"], texts)
        via_actor = TextReward("ndcg", remote)(*args, target=targets)
        assert via_actor == TextReward("ndcg", local)(*args, target=targets) and via_actor[1] == 1.0 and via_actor[3] == 0.0
        # a second client finds the same named actor (shared by trainer processes)
        again = make_retrieval(RetrievalConfig(backend="ray", actor_name="test-retrieval"), None)
        assert torch.equal(again.rank_texts(["blue cotton shirt"], [1]), torch.tensor([0]))
        # a dead service is an error after retries, never a silent zero reward
        ray.kill(remote.actor)
        _wait_until_dead(ray, remote.actor)  # ray.kill is asynchronous
        with pytest.raises(RuntimeError, match="dead or unreachable after 3 attempts"):
            remote.rank_texts(["x"], [0])
    finally:
        ray.shutdown()
