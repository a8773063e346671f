"""Analytic tests of the slate agents' formulas against hand-computed tensors (spec §3, §5, §6)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from rl4rec.slate.agents import AgentConfig, ReinforceAgent, SACAgent, SlateQAgent
from rl4rec.slate.agents.base import discounted_returns, first_click
from rl4rec.slate.gru_sequence import gru_sequence
from rl4rec.slate.nets import EnsembleGRU, EnsembleLinear
from rl4rec.slate.rankers import GeMS, GeMSConfig, TopK


def test_discounted_returns_by_hand():
    r = torch.tensor([[1.0, 0.0, 2.0]])
    assert_close(discounted_returns(r, 0.5), torch.tensor([[1.0 + 0.0 + 0.25 * 2, 0.0 + 0.5 * 2, 2.0]]))


def test_first_click():
    slates = torch.tensor([[7, 8, 9], [4, 5, 6], [1, 2, 3]])
    clicks = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    item, clicked = first_click(slates, clicks)
    assert item[0] == 8 and item[2] == 1 and clicked.tolist() == [True, False, True]


def test_ensemble_linear_and_gru_match_torch_modules():
    torch.manual_seed(0)
    lin = EnsembleLinear([1, 2], 4, 3, "t")
    x = torch.randn(2, 5, 4)
    for s in range(2):
        assert_close(lin(x)[s], x[s] @ lin.weight[s] + lin.bias[s])
    gru = EnsembleGRU([1, 2], 4, 3, "g")
    ref = torch.nn.GRU(4, 3, batch_first=True)
    seq = torch.randn(2, 6, 7, 4)
    out = gru(seq)
    for s in range(2):
        with torch.no_grad():  # torch stores (3H, in) with gates r, z, n: ours is the transpose
            ref.weight_ih_l0.copy_(gru.w_ih[s].T)
            ref.weight_hh_l0.copy_(gru.w_hh[s].T)
            ref.bias_ih_l0.copy_(gru.b_ih[s, 0])
            ref.bias_hh_l0.copy_(gru.b_hh[s, 0])
        assert_close(out[s], ref(seq[s])[0], atol=1e-6, rtol=1e-5)


def test_gru_sequence_backward_passes_gradcheck():
    torch.manual_seed(0)
    s, b, t, h = 2, 3, 5, 4
    gi = torch.randn(s, b, t, 3 * h, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(s, b, h, dtype=torch.double, requires_grad=True)
    w_hh = torch.randn(s, h, 3 * h, dtype=torch.double, requires_grad=True)
    b_hh = torch.randn(s, 1, 3 * h, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(gru_sequence, (gi, h0, w_hh, b_hh))


def test_ensemble_gru_gradients_equal_the_unrolled_cell():
    """The fused sequence node gives the gradients autograd gives through the step-by-step cell."""
    torch.manual_seed(1)
    gru = EnsembleGRU([3, 4], 6, 5, "g")
    x = torch.randn(2, 4, 7, 6)
    weights = torch.randn(2, 4, 7, 5)  # a loss that weights every step's state differently

    def grads(out):
        gru.zero_grad()
        (out * weights).sum().backward()
        return [p.grad.clone() for p in gru.parameters()]

    fused_out = gru(x)
    fused = grads(fused_out)
    gi, h, outs = gru.input_proj(x), torch.zeros(2, 4, 5), []
    for step in range(7):
        h = gru.cell(gi[:, :, step], h)
        outs.append(h)
    unrolled_out = torch.stack(outs, 2)
    unrolled = grads(unrolled_out)
    assert torch.equal(fused_out, unrolled_out)  # acting (cell) and training (sequence) states agree bit for bit
    for a, b in zip(fused, unrolled, strict=True):
        assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_ensemble_members_are_independent_and_seeded():
    a = EnsembleLinear([5, 6], 3, 2, "x")
    b = EnsembleLinear([5], 3, 2, "x")
    assert_close(a.weight[0], b.weight[0])  # member init depends on its own seed only
    assert not torch.equal(a.weight[0], a.weight[1])


# ----------------------------------------------------------------------------- GeMS


def _tiny_gems(**kw) -> GeMS:
    cfg = GeMSConfig(latent_dim=2, item_dim=3, encoder_hidden=(4,), decoder_hidden=(4, 5), **kw)
    return GeMS([0], num_items=6, rec_size=2, cfg=cfg)


def test_gems_loss_terms_by_hand():
    torch.manual_seed(1)
    gems = _tiny_gems(lambda_kl=0.7, lambda_click=0.3)
    slates = torch.tensor([[[1, 4], [5, 0], [2, 2]]])
    clicks = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]])
    terms = gems.loss(slates, clicks, sample=False)
    mu, logvar = gems.encode(slates, clicks)
    logits, click_logits = gems.decode(mu)
    # slate CE: mean over batch x slots of -log softmax(logits)[true item]
    ce = -torch.log_softmax(logits[0], -1).gather(-1, slates[0].unsqueeze(-1)).mean()
    p = torch.sigmoid(click_logits[0])
    bce = -(clicks[0] * torch.log(p) + (1 - clicks[0]) * torch.log(1 - p)).mean()
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean()  # averaged over dims (official)
    assert_close(terms["slate_ce"][0], ce)
    assert_close(terms["click_bce"][0], bce, rtol=1e-5, atol=1e-6)
    assert_close(terms["kl"][0], kl)
    assert_close(terms["loss"][0], ce + 0.3 * bce + 0.7 * kl, rtol=1e-5, atol=1e-6)
    fixed = _tiny_gems(lambda_kl=0.7, lambda_click=0.3, fix_kl_sum=True)
    fixed.load_state_dict(gems.state_dict())
    assert_close(fixed.loss(slates, clicks, sample=False)["kl"][0], kl * 2)  # summed over d = 2 dims


def test_gems_reparameterisation_faithful_uses_variance():
    gems = _tiny_gems()
    mu, logvar = torch.zeros(1, 1, 2), torch.log(torch.tensor([[[4.0, 9.0]]]))
    eps = torch.randn(1, 1, 2, generator=torch.Generator().manual_seed(3))
    z = gems.reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    assert_close(z, eps * torch.tensor([4.0, 9.0]))  # official bug: eps * variance
    fixed = _tiny_gems(fix_reparam=True)
    assert_close(fixed.reparameterize(mu, logvar, torch.Generator().manual_seed(3)), eps * torch.tensor([2.0, 3.0]))


def test_gems_paper_parameter_count():
    gems = GeMS([0], 1000, 10, GeMSConfig())
    n = sum(p.numel() for p in gems.parameters())
    assert n == 20_000 + 255_808 + 140_032 + 102_600 + 5_130  # spec §3.1: 523K


def test_gems_action_bounds_and_rank():
    gems = _tiny_gems()
    slates = torch.randint(0, 6, (1, 50, 2))
    clicks = torch.randint(0, 2, (1, 50, 2)).float()
    center, scale = gems.action_bounds(slates, clicks, chunk=7)
    mu, logvar = gems.encode(slates, clicks)
    sd = torch.exp(0.5 * logvar)
    lo, hi = (mu - sd).amin(1), (mu + sd).amax(1)
    assert_close(center, (hi + lo) / 2)
    assert_close(scale, (hi - lo) / 2)
    actions = torch.randn(1, 4, 2) * 3
    out = gems.rank(actions)
    assert out.shape == (1, 4, 2) and out.dtype == torch.long
    assert torch.equal(out, gems.decode(actions)[0].argmax(-1))  # the fast path is the decoder's argmax


def test_topk_ranker():
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    ranker = TopK(table, rec_size=2)
    assert ranker.rank(torch.tensor([[[1.0, 0.1]]])).tolist() == [[[0, 2]]]
    assert_close(ranker.center, torch.tensor([0.0, 0.5]))
    assert_close(ranker.scale, torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="finite"):
        TopK(torch.tensor([[float("nan"), 0.0]]))


def test_agents_move_whole_and_checkpoints_keep_their_keys():
    """``to_device`` moves what ``.to`` moves plus the generators; the TopK table travels with the
    agent (a buffer) but is not a checkpoint entry, so SAC+TopK checkpoints keep their keys."""
    agent = _sac()
    assert not any(k.startswith("ranker.") for k in agent.state_dict())
    assert {n for n, _ in agent.named_buffers()} >= {"ranker.table", "center", "scale"}
    assert agent.to_device("cpu") is agent and agent.generator.initial_seed() == 17


# ----------------------------------------------------------------------------- SAC


def _sac(**kw) -> SACAgent:
    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=3, **kw)
    ranker = TopK(torch.randn(6, 2), rec_size=2)
    center, scale = torch.tensor([[0.5, -0.5]]), torch.tensor([[2.0, 1.0]])
    return SACAgent([0], cfg, ranker, center, scale, num_items=6, rec_size=2)


def test_sac_sample_log_prob_by_hand():
    agent = _sac()
    state = torch.randn(1, 3, 4)
    eps = torch.randn(1, 3, 2)
    action, logp = agent.sample(state, noise=eps)
    mean, log_std = agent.policy(state).chunk(2, -1)
    log_std = log_std.clamp(-20, 2)
    x = mean + log_std.exp() * eps
    normal = torch.distributions.Normal(mean, log_std.exp())
    expected = (normal.log_prob(x) - torch.log(1 - torch.tanh(x) ** 2 + 1e-6)).sum(-1)
    assert_close(logp, expected)
    assert_close(action, torch.tensor([0.5, -0.5]) + torch.tensor([2.0, 1.0]) * torch.tanh(x))
    det, none = agent.sample(state, deterministic=True)
    assert none is None and torch.allclose(det, torch.tensor([0.5, -0.5]) + torch.tensor([2.0, 1.0]) * torch.tanh(mean))


def _batch(agent, b=2, t=3):
    g = torch.Generator().manual_seed(0)
    return {
        "slates": torch.randint(0, 6, (1, b, t, 2), generator=g),
        "clicks": torch.randint(0, 2, (1, b, t, 2), generator=g).float(),
        "actions": torch.randn(1, b, t, 2, generator=g),
        "rewards": torch.randint(0, 3, (1, b, t), generator=g).float(),
    }


def test_sac_q_target_and_loss_by_hand():
    agent = _sac(gamma=0.8)
    batch = _batch(agent)
    s_crit, s_act = agent.encode(batch)
    alpha = torch.tensor([0.2])
    state = agent.generator.get_state()
    loss, _ = agent.q_loss(batch, s_crit, s_act, alpha)
    agent.generator.set_state(state)  # replay the same next-action noise
    next_c = torch.cat([s_crit[:, :, 1:], torch.zeros_like(s_crit[:, :, :1])], 2)
    next_a = torch.cat([s_act[:, :, 1:], torch.zeros_like(s_act[:, :, :1])], 2)
    a2, lp2 = agent.sample(next_a)
    q_next = torch.minimum(agent.q1_target(torch.cat([next_c, a2], -1)), agent.q2_target(torch.cat([next_c, a2], -1))).squeeze(-1)
    done = torch.tensor([0.0, 0.0, 1.0])
    y = batch["rewards"] + 0.8 * (1 - done) * (q_next - 0.2 * lp2)
    sa = torch.cat([s_crit, batch["actions"]], -1)
    expected = 0.5 * (F.mse_loss(agent.q1(sa).squeeze(-1), y) + F.mse_loss(agent.q2(sa).squeeze(-1), y))
    assert_close(loss[0], expected.detach(), rtol=1e-5, atol=1e-6)


def test_sac_policy_and_entropy_losses_by_hand():
    agent = _sac()
    s_crit, s_act = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    eps = torch.randn(1, 2, 3, 2)
    alpha = torch.tensor([0.5])
    loss, logp = agent.policy_loss(s_crit, s_act, alpha, noise=eps)
    a, lp = agent.sample(s_act, noise=eps)
    q = torch.minimum(agent.q1(torch.cat([s_crit, a], -1)), agent.q2(torch.cat([s_crit, a], -1))).squeeze(-1)
    assert_close(loss[0], (0.5 * lp - q).mean())
    # alpha loss: -mean(exp(log alpha) * (log pi + target entropy)), target = -A = -2
    with torch.no_grad():
        agent.log_alpha.fill_(math.log(0.3))
    assert_close(agent.alpha_loss(logp)[0], -(0.3 * (logp.detach() - 2.0)).mean())


def test_sac_policy_loss_gradient_reaches_the_policy_only():
    """The policy loss differentiates Q with respect to the action, not Q's weights; the
    policy's gradient equals plain autograd through unfrozen Q-networks."""
    agent = _sac()
    s_crit, s_act, eps = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 2)
    loss, _ = agent.policy_loss(s_crit, s_act, torch.tensor([0.5]), noise=eps)
    loss.sum().backward()
    assert all(p.grad is None for p in [*agent.q1.parameters(), *agent.q2.parameters()])
    assert all(p.requires_grad for p in [*agent.q1.parameters(), *agent.q2.parameters()])  # restored
    fast = [p.grad.clone() for p in agent.policy.parameters()]
    agent.policy.zero_grad()
    a, lp = agent.sample(s_act, noise=eps)
    sa = torch.cat([s_crit, a], -1)
    (0.5 * lp - torch.minimum(agent.q1(sa), agent.q2(sa)).squeeze(-1)).mean().backward()
    for got, want in zip(fast, [p.grad for p in agent.policy.parameters()], strict=True):
        assert_close(got, want)


def test_sac_alpha_schedule_official_quirk():
    agent = _sac()
    assert agent.alpha().item() == pytest.approx(0.2)  # the flag value, first update only
    agent.updates = 1
    assert agent.alpha().item() == pytest.approx(1.0)  # then exp(log alpha) with log alpha = 0
    fixed = _sac(fix_alpha_init=True)
    fixed.updates = 1
    assert fixed.alpha().item() == pytest.approx(0.2)


def test_sac_update_changes_q_and_policy_and_targets_slowly():
    agent = _sac(tau=0.5)
    batch = _batch(agent)
    q_before = agent.q1.layers[0].weight.detach().clone()
    pi_before = agent.policy.layers[0].weight.detach().clone()
    tgt_before = agent.q1_target.layers[0].weight.detach().clone()
    metrics = agent.update(batch, 0)
    assert {"losses/q", "losses/pi", "losses/alpha", "train/alpha"} <= set(metrics)
    assert not torch.equal(q_before, agent.q1.layers[0].weight)
    assert not torch.equal(pi_before, agent.policy.layers[0].weight)
    assert_close(agent.q1_target.layers[0].weight, 0.5 * tgt_before + 0.5 * agent.q1.layers[0].weight.detach())


# ----------------------------------------------------------------------------- REINFORCE


def test_reinforce_loss_by_hand():
    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=3, gamma=0.5)
    agent = ReinforceAgent([0], cfg, num_items=6, rec_size=2)
    batch = {
        "slates": torch.tensor([[[[0, 1], [2, 3], [4, 5]]]]),
        "clicks": torch.tensor([[[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]]]),
        "actions": torch.tensor([[[[2, 3], [4, 5], [1, 0]]]], dtype=torch.int16),
        "step_clicks": torch.tensor([[[[0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]]]),
        "rewards": torch.tensor([[[1.0, 0.0, 2.0]]]),
    }
    loss = agent.loss(batch)
    states = agent.actor_belief.encode(batch["slates"], batch["clicks"])
    pi = torch.softmax(agent.policy(states), -1)[0, 0]  # (T, N)
    g = torch.tensor([1.0 + 0.25 * 2, 1.0, 2.0])  # gamma = 0.5
    # clicked turns: t=0 first click at slot 1 -> item 3; t=2 first click at slot 0 -> item 1
    la0 = torch.log(1 - (1 - pi[0, 3]) ** 2 + 1e-6)
    la2 = torch.log(1 - (1 - pi[2, 1]) ** 2 + 1e-6)
    assert_close(loss[0], -(g[0] * la0 + g[2] * la2))


# ----------------------------------------------------------------------------- SlateQ


def _stub_sim(rel: torch.Tensor, topics: torch.Tensor, threshold: int, penalty: float):
    return SimpleNamespace(
        relevances=lambda user_state: rel.expand(user_state.shape[0], -1),
        item_topics=topics,
        num_topics=int(topics.max()) + 1,
        config=SimpleNamespace(diversity_threshold=threshold),
        diversity_penalty=penalty,
        examination=torch.tensor([1.0, 0.5]),
    )


def test_slateq_target_by_hand():
    rel = torch.tensor([0.9, 0.1, 0.5, 0.8])
    sim = _stub_sim(rel, topics=torch.tensor([0, 0, 1, 0]), threshold=2, penalty=2.0)
    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=3, gamma=0.8, fix_slateq_divpen=True)
    agent = SlateQAgent([0], cfg, sim, num_items=4, rec_size=2)
    with torch.no_grad():  # make Q_target(s', .) = [1, 2, 3, 4] whatever the state
        last = agent.q_target.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    next_states, users = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 20)
    done = torch.tensor([[[0.0, 1.0]]])
    y = agent.target(next_states, users, done)
    # scores rel*Q = [0.9, 0.2, 1.5, 3.2] -> A' = [3, 2] (topics 0, 1: no penalty at threshold 2)
    expected0 = 1 + 0.8 * (0.8 * 1.0 * 4.0 + 0.5 * 0.5 * 3.0)
    assert_close(y, torch.tensor([[[expected0, 1.0]]]))
    # per-slate DivPen: make both chosen items share topic 0 -> attractiveness / 2
    sim.item_topics = torch.tensor([0, 0, 0, 0])
    assert_close(agent.target(next_states, users, done)[0, 0, 0], torch.tensor(1 + 0.8 * (0.4 * 4.0 + 0.25 * 0.5 * 3.0)))


def test_slateq_official_divpen_is_batch_wide():
    rel = torch.tensor([0.9, 0.1, 0.5, 0.8])
    sim = _stub_sim(rel, topics=torch.tensor([0, 0, 1, 0]), threshold=2, penalty=2.0)
    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=3, gamma=0.8)
    agent = SlateQAgent([0], cfg, sim, num_items=4, rec_size=2)
    with torch.no_grad():
        agent.q_target.layers[-1].weight.zero_()
        agent.q_target.layers[-1].bias.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    # two next slates, each [3, 2] (topics 0, 1): per slate no penalty, but the batch holds topic 0 twice
    y = agent.target(torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 20), torch.zeros(1, 1, 2))
    assert_close(y[0, 0, 0], torch.tensor(1 + 0.8 * (0.4 * 4.0 + 0.25 * 0.5 * 3.0)))


def test_ensemble_select_equals_full_forward_gather():
    from rl4rec.slate.nets import EnsembleMLP

    mlp = EnsembleMLP([1, 2], 4, [8], 30, "sel")
    x = torch.randn(2, 3, 5, 4)
    idx = torch.randint(0, 30, (2, 3, 5))
    assert_close(mlp.select(x, idx), mlp(x).gather(-1, idx.unsqueeze(-1)).squeeze(-1))


# ----------------------------------------------------------------------------- WkNN


def test_wknn_layouts_and_greedy_slates_by_brute_force():
    from rl4rec.slate.agents import WkNNAgent

    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=20)
    torch.manual_seed(0)
    agent = WkNNAgent([0], cfg, num_items=30, rec_size=3)
    a = torch.arange(60.0).view(1, 1, 60)
    # official reading: slot r = entries r, r+3, r+6, ... (dimension-major)
    assert_close(agent.protos(a)[0, 0, 1], torch.arange(1.0, 60.0, 3))
    fixed = WkNNAgent([0], cfg, num_items=30, rec_size=3, fixed=True, table=torch.randn(30, 20))
    assert_close(fixed.protos(a)[0, 0, 1], torch.arange(20.0, 40.0))
    state, action = torch.randn(1, 2, 4), torch.randn(1, 2, 60)
    got = agent.greedy_slates(state, action)
    # brute force: the same greedy procedure item by item, one user at a time
    for u in range(2):
        protos = agent.protos(action[:, u])[0]
        chosen = []
        for r in range(3):
            cands = torch.cdist(protos[r : r + 1], agent.items[0]).topk(10, largest=False).indices[0]
            best, best_q = None, -float("inf")
            for c in cands.tolist():
                slate = chosen + [c] * (3 - r)
                emb = agent.items[0][torch.tensor(slate)].reshape(1, 1, -1)
                q = agent.q1_target(torch.cat([state[:, u : u + 1], emb], -1)).item()
                if q > best_q:
                    best, best_q = c, q
            chosen.append(best)
        assert got[0, u].tolist() == chosen


def test_wknn_q_loss_uses_previous_slate_in_faithful_mode():
    from rl4rec.slate.agents import WkNNAgent

    cfg = AgentConfig(hidden=(8,), state_dim=4, belief_item_dim=20)
    agent = WkNNAgent([0], cfg, num_items=30, rec_size=3)
    g = torch.Generator().manual_seed(1)
    batch = {
        "slates": torch.randint(0, 30, (1, 2, 4, 3), generator=g),
        "clicks": torch.randint(0, 2, (1, 2, 4, 3), generator=g).float(),
        "actions": torch.randint(0, 30, (1, 2, 4, 3), generator=g).to(torch.int16),
        "rewards": torch.ones(1, 2, 4),
    }
    s_crit, s_act = agent.encode(batch)
    _, q1 = agent.q_loss(batch, s_crit, s_act, torch.tensor([0.2]))
    expected = agent.q1(torch.cat([s_crit, agent.slate_embedding(batch["slates"])], -1)).squeeze(-1)
    assert_close(q1, expected)
    agent.update(batch, 0)  # the whole update runs (kNN + greedy next slates in the target)
