"""GRPO pieces against hand-computed values: rank rewards, advantages, k3 KL, loss, device-count independence."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch.testing import assert_close

from rl4rec.genrec.grpo.objective import group_advantages, k3_kl, policy_loss
from rl4rec.genrec.grpo.rewards import RewardContext, Rollouts, combine_rewards, rank_weights


def test_rank_weights_match_spec_values():
    w16 = rank_weights(16)
    expected = [.1638, .1033, .0819, .0705, .0634, .0583, .0546, .0517, .0493, .0473, .0457, .0443, .0430, .0419, .0409, .0401]
    assert_close(w16, torch.tensor(expected), atol=6e-5, rtol=0)
    assert sum(1 / math.log2(j + 2) for j in range(16)) == pytest.approx(6.10600, abs=1e-5)
    w8 = rank_weights(8)
    assert w8[0].item() == pytest.approx(.2529, abs=5e-5) and w8[7].item() == pytest.approx(.0798, abs=5e-5)
    assert w8.sum().item() == pytest.approx(1.0)


def _rollouts(items, targets, prompts, ranks=None, **kw):
    items = torch.tensor(items)
    return Rollouts(
        prompt_ids=torch.tensor(prompts),
        item_ids=items,
        ranks=torch.tensor(ranks) if ranks is not None else torch.arange(len(items)) % 8,
        target_ids=torch.tensor(targets),
        **kw,
    )


def test_ranking_reward_by_hand_g8():
    # group 0 (prompt 5): target 3 generated at rank 2; group 1 (prompt 9): no hit; one invalid item
    items = [1, 2, 3, 4, 5, 6, 7, -1] + [10, 11, 12, 13, 14, 15, 16, 17]
    targets = [3] * 8 + [99] * 8
    prompts = [5] * 8 + [9] * 8
    ranks = list(range(8)) * 2
    r = _rollouts(items, targets, prompts, ranks)
    w = rank_weights(8)
    total, metrics = combine_rewards(r, {"ranking": 1.0}, RewardContext())
    expected = torch.zeros(16)
    for i in range(8):
        expected[i] = 1.0 if i == 2 else -w[i]
    expected[7] = 0.0  # invalid item: the invalid reward (0), never a random score
    assert_close(total, expected)
    assert metrics["train/invalid_rate"] == pytest.approx(1 / 16)
    # groups are found by prompt id, not by position: shuffling rows changes nothing
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = Rollouts(r.prompt_ids[perm], r.item_ids[perm], r.ranks[perm], r.target_ids[perm])
    assert_close(combine_rewards(shuffled, {"ranking": 1.0}, RewardContext())[0], expected[perm])


def test_ranking_reward_g16_penalties_sum_to_minus_one():
    items = list(range(100, 116))
    items[5] = 7
    r = _rollouts(items, [7] * 16, [0] * 16, list(range(16)))
    total, _ = combine_rewards(r, {"ndcg_rule": 1.0}, RewardContext())
    assert total[5] == 0
    assert total.sum().item() == pytest.approx(-(1 - rank_weights(16)[5].item()))


def test_semantic_and_retrieval_rewards():
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    r = _rollouts([1, 2, -1], [2, 2, 2], [0, 0, 0], [0, 1, 2], target_ranks=torch.tensor([0, 4, 12]))
    ctx = RewardContext(item_embeddings=emb, invalid_reward=-1.0, cutoff=10)
    sem, _ = combine_rewards(r, {"semantic": 1.0}, ctx)
    assert_close(sem, torch.tensor([1 / math.sqrt(2), 1.0, -1.0]))
    # free text grounded by retrieval: rows are valid, the target's retrieval rank decides
    r = _rollouts([1, 2, 0], [2, 2, 2], [0, 0, 0], [0, 1, 2], target_ranks=torch.tensor([0, 4, 12]))
    ndcg, _ = combine_rewards(r, {"ndcg": 1.0}, ctx)
    assert_close(ndcg, torch.tensor([1.0, 1 / math.log2(6), 0.0]))
    mrr, _ = combine_rewards(r, {"mrr": 1.0}, ctx)
    assert_close(mrr, torch.tensor([1.0, 0.2, 0.0]))
    mixed, _ = combine_rewards(r, {"mixed": 1.0}, RewardContext(mixed_weights={"ndcg": 0.8, "hit": 0.2}))
    assert_close(mixed, 0.8 * ndcg + 0.2 * torch.tensor([1.0, 1.0, 0.0]))
    with pytest.raises(KeyError, match="unknown reward"):
        combine_rewards(r, {"ndgc": 1.0}, ctx)


def test_prefix_and_rank_hit_rewards_by_hand():
    """3-level SIDs. Target item 0 = (1, 2, 3). Completions: item 1 = (1, 2, 9) -> 2/3; item 2 =
    (1, 7, 3) -> 1/3 (the third code matches but the second does not); item 3 = (5, 2, 3) -> 0;
    the target itself -> 1; invalid -> invalid_reward. rank_hit: the hit at rank 3 -> 1/log2(5)."""
    codes = torch.tensor([[1, 2, 3], [1, 2, 9], [1, 7, 3], [5, 2, 3]])
    r = _rollouts([1, 2, 3, 0, -1], [0] * 5, [0] * 5, [0, 1, 2, 3, 4])
    ctx = RewardContext(item_codes=codes, invalid_reward=-0.5)
    prefix, _ = combine_rewards(r, {"prefix": 1.0}, ctx)
    assert_close(prefix, torch.tensor([2 / 3, 1 / 3, 0.0, 1.0, -0.5]))
    hit, _ = combine_rewards(r, {"rank_hit": 1.0}, ctx)
    assert_close(hit, torch.tensor([0.0, 0.0, 0.0, 1 / math.log2(5), -0.5]))
    with pytest.raises(ValueError, match="item_codes"):
        combine_rewards(r, {"prefix": 1.0}, RewardContext())


def test_normalize_then_sum_z_scores_each_reward_within_its_group():
    """Two groups of 2 (target 0, then target 3, which is closer to item 1 than to item 2).
    rule = (1, 0 | 0, 0); summed raw, semantic's scale leaks into the total; normalised first,
    each reward is +-1 inside a group where it varies and 0 where it does not:
    total = 1*(1, -1 | 0, 0) + 2*(1, -1 | 1, -1)."""
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    items, targets = [0, 2, 1, 2], [0, 0, 3, 3]
    r = _rollouts(items, targets, [0, 0, 1, 1], [0, 1, 0, 1])
    sem = torch.nn.functional.normalize(emb, dim=-1)
    sims = (sem[items] * sem[targets]).sum(-1)
    raw, _ = combine_rewards(r, {"rule": 1.0, "semantic": 2.0}, RewardContext(item_embeddings=emb))
    assert_close(raw, torch.tensor([1.0, 0.0, 0.0, 0.0]) + 2 * sims)
    ctx = RewardContext(item_embeddings=emb, aggregation="normalize_then_sum")
    norm, metrics = combine_rewards(r, {"rule": 1.0, "semantic": 2.0}, ctx)
    z = 1 / (1 + 1e-6)  # (x - mean) / (std + eps) with two distinct values: +-1 up to eps
    assert_close(norm, z * torch.tensor([3.0, -3.0, 2.0, -2.0]), atol=1e-4, rtol=0)  # eps / std: < 1e-4 here
    assert metrics["rewards/semantic_mean"] == pytest.approx(float(sims.mean()))  # metrics stay raw
    with pytest.raises(ValueError, match="aggregation"):
        combine_rewards(r, {"rule": 1.0}, RewardContext(aggregation="mean"))


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0])
    prompts = torch.tensor([3, 3, 3, 3, 8, 8])
    adv, metrics = group_advantages(rewards, prompts)
    std = torch.tensor([1.0, 0, 0, 0]).std()  # unbiased: sqrt(0.25) = 0.5
    assert_close(adv[:4], (torch.tensor([1.0, 0, 0, 0]) - 0.25) / (std + 1e-4))
    assert_close(adv[4:], torch.zeros(2))  # equal rewards: advantage 0
    assert metrics["train/zero_adv_groups"] == 0.5
    adv_none, _ = group_advantages(rewards, prompts, scale="none")
    assert_close(adv_none[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_k3_kl_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0])
    assert_close(k3_kl(logp, ref), torch.tensor([math.exp(-0.5) + 0.5 - 1, 0.0]))
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_grpo_loss_value_and_gradient():
    logp = torch.tensor([[-1.0, -0.5, -9.0], [-2.0, -1.0, -1.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    ref = torch.tensor([[-1.2, -0.5, 0.0], [-2.0, -1.5, -1.0]])
    loss, metrics = policy_loss(logp, mask, adv, ref_logp=ref, beta=0.1)
    kl = k3_kl(logp.detach(), ref)
    # ratio = 1: per token -A + beta * kl, mean over each sequence's tokens, then over sequences
    seq0 = (-2.0 + 0.1 * kl[0, :2]).mean()
    seq1 = (1.0 + 0.1 * kl[1]).mean()
    assert_close(loss, (seq0 + seq1) / 2)
    loss.backward()
    # d/dlogp of -A*ratio is -A (per masked token / length / M); KL part: beta*(1 - exp(ref-logp))
    g_expected = torch.zeros(2, 3)
    g_expected[0, :2] = (-2.0 + 0.1 * (1 - torch.exp(ref[0, :2] - logp.detach()[0, :2]))) / 2 / 2
    g_expected[1] = (1.0 + 0.1 * (1 - torch.exp(ref[1] - logp.detach()[1]))) / 3 / 2
    assert_close(logp.grad, g_expected)
    assert metrics["train/kl"] == pytest.approx(float((kl * mask).sum() / mask.sum()))


def test_clipped_ratio_when_old_logp_differs():
    logp = torch.tensor([[0.0]], requires_grad=True)
    old = torch.tensor([[-1.0]])  # ratio e > 1 + eps
    loss, _ = policy_loss(logp, torch.ones(1, 1), torch.tensor([1.0]), old_logp=old, clip_eps=0.2)
    assert loss.item() == pytest.approx(-1.2)  # min(e * 1, 1.2 * 1)
    loss.backward()
    assert logp.grad.item() == 0.0  # clipped: no gradient


def _split_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from rl4rec.devices import sum_gradients
    from rl4rec.genrec.grpo.objective import global_advantages

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    policy = torch.nn.Linear(4, 1)
    x, rewards, prompts, mask = _problem()
    rows = slice(0, 7) if rank == 0 else slice(7, 12)  # the group of prompt 1 straddles both ranks
    adv, _, n_global = global_advantages(rewards[rows], prompts[rows])
    logp = policy(x[rows]).squeeze(-1)
    loss, _ = policy_loss(logp, mask[rows], adv, normalizer=float(n_global))
    loss.backward()
    sum_gradients(policy.parameters())
    if rank == 0:
        torch.save({"adv_rows": adv, "grad": policy.weight.grad.clone()}, out_file)
    dist.barrier()  # both ranks are done before gloo is torn down (an early teardown can abort the peer)
    dist.destroy_process_group()


def _problem():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, 4, generator=g)
    rewards = torch.randint(0, 3, (12,), generator=g).float()
    prompts = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    mask = torch.ones(12, 3)
    return x, rewards, prompts, mask


def test_two_processes_give_the_same_advantages_and_gradients(tmp_path):
    import torch.multiprocessing as mp

    x, rewards, prompts, mask = _problem()
    torch.manual_seed(0)
    policy = torch.nn.Linear(4, 1)
    adv, _ = group_advantages(rewards, prompts)
    loss, _ = policy_loss(policy(x).squeeze(-1), mask, adv)
    loss.backward()
    out = tmp_path / "rank0.pt"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_split_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    assert_close(got["adv_rows"], adv[:7])
    assert_close(got["grad"], policy.weight.grad)
