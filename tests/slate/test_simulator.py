"""TopicRec simulator: hand-computed formulas, official bookkeeping, oracle fill, CRN, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from rl4rec.config import ConfigError
from rl4rec.slate.env import boredom, rng
from rl4rec.slate.env.click_models import examination
from rl4rec.slate.env.config import TopicRecConfig, variant_config
from rl4rec.slate.env.embeddings import generate_embeddings, initial_slate, load_embeddings, main_topics
from rl4rec.slate.env.simulator import TopicRecSimulator
from rl4rec.slate.evaluate import episode_returns
from rl4rec.slate.policies import RandomPolicy, ShortTermOracle
from tests.slate.conftest import released, tiny


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------- click models


def test_examination_vectors_match_spec():
    td = [1.0, 0.85, 0.7225, 0.6141, 0.5220, 0.4437, 0.3771, 0.3206, 0.2725, 0.2316]
    mix = [0.6158, 0.5612, 0.5215, 0.4956, 0.4829, 0.4829, 0.4956, 0.5215, 0.5612, 0.6158]
    assert_close(examination("tdPBM"), torch.tensor(td), atol=1e-4, rtol=0)
    assert_close(examination("mixPBM"), torch.tensor(mix), atol=1e-4, rtol=0)
    assert examination("tdPBM")[0].item() == 1.0  # 0-based exponents: the top slot is always examined
    # paper formula (1-based): nu*g^r + (1-nu)*g^(K+1-r), r = 1..K
    assert_close(examination("mixPBM", one_based=True)[0], torch.tensor(0.5 * 0.85 + 0.5 * 0.85**10))
    assert examination("tdPBM", threshold=0.5).tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


# --------------------------------------------------------------------------- catalogues


def test_released_catalogues_initial_slates_and_topics(shared_data):
    focused = load_embeddings(shared_data / "slate" / "item_embeddings_focused.npy")
    diffuse = load_embeddings(shared_data / "slate" / "item_embeddings_diffuse.npy")
    assert initial_slate(focused, 10, 2, 10).tolist() == [78, 575, 163, 145, 599, 6, 200, 279, 850, 225]
    assert initial_slate(diffuse, 10, 2, 10).tolist() == [714, 632, 414, 30, 759, 515, 392, 15, 458, 335]
    sizes = torch.bincount(main_topics(focused, 10, 2), minlength=10).tolist()
    assert sizes == [105, 108, 99, 109, 103, 102, 88, 92, 99, 95]
    sizes = torch.bincount(main_topics(diffuse, 10, 2), minlength=10).tolist()
    assert sizes == [105, 102, 96, 102, 107, 99, 109, 101, 98, 81]
    sim = released(shared_data, "focused_topdown")
    assert abs(sim.max_score - 1.0000001) < 1e-6


def test_generator_matches_released_distribution_and_peaks(shared_data):
    focused = load_embeddings(shared_data / "slate" / "item_embeddings_focused.npy")
    plain = generate_embeddings(seed=3)
    assert plain.shape == (1000, 20) and bool((plain >= 0).all())
    assert_close(plain.norm(dim=1), torch.ones(1000))
    # un-peaked draws look like the released files (spec §1.2): mean max coordinate ~0.57
    assert abs(plain.max(1).values.mean() - focused.max(1).values.mean()) < 0.02
    peak15, peak2 = generate_embeddings(seed=3, peak_power=1.5), generate_embeddings(seed=3, peak_power=2)
    assert plain.max(1).values.mean() + 0.05 < peak15.max(1).values.mean() < peak2.max(1).values.mean()
    assert torch.equal(generate_embeddings(seed=3), plain)


# --------------------------------------------------------------------------- relevance and user draw


def test_relevance_formula_hand_computed():
    # max_score = 2: scores are divided by it
    sim = tiny([[2, 0, 0, 0], [0, 0, 1.2, 1.6], [1.2, 1.6, 0, 0]])
    sim.reset(1)
    sim.user = torch.tensor([[0.3, 0.4, 0.0, 0.0]])
    rel = sim.relevances()[0]
    # scores 0.6/2 = 0.3, 0, 1.0/2 = 0.5; rel = sigmoid(100 (score - 0.28))
    assert_close(rel, torch.tensor([sigmoid(2.0), sigmoid(-28.0), sigmoid(22.0)]))
    _, _, _, info = sim.step(torch.tensor([[0, 2]]))
    assert_close(info["scores"][0], torch.tensor([0.3, 0.5]))
    assert_close(sim.click_probs(torch.tensor([[0.5, 1.0]])), torch.tensor([[0.5, 0.85]]))


def test_user_draw_formula_and_group_norm(shared_data):
    sim = released(shared_data, "focused_topdown")
    sim.reset(4, user_offset=7)
    ids = torch.arange(7, 11)
    z = (0.4 * rng.normals(sim._user_key, ids, 0, 20)).clamp(-1, 1).abs().view(4, 10, 2)
    p = rng.uniforms(sim._user_key, ids, 1, 10) ** 3
    v = (p / p.sum(1, keepdim=True)).unsqueeze(2) * z
    expected = v.flatten(1) / v.norm(dim=2).sum(1, keepdim=True)
    assert_close(sim.user, expected)
    # official normalisation: sum of per-topic L2 norms = 1 (not unit L2)
    assert_close(sim.user.view(4, 10, 2).norm(dim=2).sum(1), torch.ones(4))
    assert bool((sim.user.norm(dim=1) < 0.999).all())


def test_rng_is_uniform_and_counter_based():
    u = rng.uniforms(rng.stream_key(1, "x"), torch.arange(20_000), 3, 10)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    again = rng.uniforms(rng.stream_key(1, "x"), torch.arange(100, 200), 3, 10)
    assert torch.equal(again, u[100:200])  # a user's numbers do not depend on the batch
    assert not torch.equal(rng.uniforms(rng.stream_key(1, "x"), torch.arange(10), 4, 10), u[:10])
    z = rng.normals(rng.stream_key(2, "y"), torch.arange(20_000), 0, 5)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02


# --------------------------------------------------------------------------- boredom bookkeeping


def _scripted_boredom(window: int, turns: int = 12) -> list[int]:
    """One user, 5 clicks on topic 0 at turn 1 and none after; return the turns topic 0 is bored."""
    mem = boredom.empty(1, 10)
    bored = torch.zeros(1, 3, dtype=torch.bool)
    timer = torch.full((1, 3), 5)
    out = []
    for t in range(1, turns + 1):
        bored, timer = boredom.advance(bored, timer, boredom.topic_counts(mem, 3), threshold=5, duration=5)
        if bored[0, 0]:
            out.append(t)
        clicks = torch.full((1, 5), t == 1)
        mem = boredom.record_turn(mem, torch.zeros(1, 5, dtype=torch.long), clicks, t, window)
    return out


def test_boredom_trigger_and_duration_scripted():
    # window 3: the clicks are forgotten after turn 5, boredom lasts exactly 5 turns (2..6)
    assert _scripted_boredom(window=3) == [2, 3, 4, 5, 6]
    # window 5 (paper): at turn 7 the memory still holds the 5 clicks, boredom re-triggers at once
    assert _scripted_boredom(window=5) == list(range(2, 12))


def _deque_reference(reset_topics, turns, window: int, aligned: bool):
    """The official deque bookkeeping for one user: A and S after every turn."""
    from collections import deque

    a, s = deque(maxlen=10), deque(maxlen=10)
    a.extend(reset_topics)
    if aligned:
        s.extend([0] * len(reset_topics))
    out = []
    for t, topics in enumerate(turns, start=1):
        a.extend(topics)
        s.extend([t] * len(topics))
        while s and s[0] < t - window:
            a.popleft()
            s.popleft()
        out.append((list(a), list(s)))
    return out


@pytest.mark.parametrize("aligned", [False, True])
def test_vectorised_memory_matches_official_deques(aligned):
    gen = torch.Generator().manual_seed(0)
    users, turns, k = 40, 30, 10
    topics = torch.randint(0, 10, (users, turns + 1, k), generator=gen)
    clicks = torch.rand(users, turns + 1, k, generator=gen) < torch.rand(users, 1, 1, generator=gen) * 0.6
    mem = boredom.record_reset(boredom.empty(users, 10), topics[:, 0], clicks[:, 0], aligned=aligned)
    states = []
    for t in range(1, turns + 1):
        mem = boredom.record_turn(mem, topics[:, t], clicks[:, t], t, window=5)
        states.append(mem)
    for b in range(users):
        ref = _deque_reference(
            topics[b, 0][clicks[b, 0]].tolist(),
            [topics[b, t][clicks[b, t]].tolist() for t in range(1, turns + 1)],
            window=5,
            aligned=aligned,
        )
        for t, (a, s) in enumerate(ref):
            m = states[t]
            assert m.topics[b, 10 - int(m.a_len[b]) :].tolist() == a
            assert m.stamps[b, 10 - int(m.s_len[b]) :].tolist() == s
            assert int(m.a_len[b]) >= int(m.s_len[b])


# --------------------------------------------------------------------------- influence and DivPen


def test_influence_update_hand_computed():
    # rel_threshold=-1 makes every item relevant and exam_gamma=1 examines every slot: both clicked
    sim = tiny([[1, 0, 0, 0], [0, 0, 0.6, 0.8], [0.6, 0.8, 0, 0]], rel_threshold=-1.0, exam_gamma=1.0)
    sim.reset(1)
    sim.user = torch.tensor([[0.5, 0.0, 0.5, 0.0]])
    _, reward, _, info = sim.step(torch.tensor([[1, 2]]))
    assert reward.tolist() == [2.0]
    # click on item 1: 0.9 u + 0.1 e1 = [0.45, 0, 0.51, 0.08], divided by 0.45 + |(0.51, 0.08)|
    u1 = torch.tensor([0.45, 0.0, 0.51, 0.08]) / (0.45 + math.hypot(0.51, 0.08))
    # then item 2 (rank order)
    w = 0.9 * u1 + 0.1 * torch.tensor([0.6, 0.8, 0.0, 0.0])
    u2 = w / (math.hypot(w[0], w[1]) + math.hypot(w[2], w[3]))
    assert_close(info["user_state"][0], u2)
    # the order matters (renormalisation between clicks)
    sim.reset(1)
    sim.user = torch.tensor([[0.5, 0.0, 0.5, 0.0]])
    _, _, _, info = sim.step(torch.tensor([[2, 1]]))
    assert not torch.allclose(info["user_state"][0], u2, atol=1e-5)


def _divpen_world(**overrides) -> TopicRecSimulator:
    # 5 topics x 2 dims; items 0..4 of topic 0, items 5..8 of topics 1..4
    rows = [[1.0 - 0.1 * i, 0.1 * i] + [0.0] * 8 for i in range(5)]
    rows += [[0.0] * (2 * k) + [1.0, 0.0] + [0.0] * (8 - 2 * k) for k in range(1, 5)]
    return tiny(rows, num_topics=5, rec_size=5, diversity_penalty=3.0, rel_threshold=-1.0, exam_gamma=1.0, **overrides)


@pytest.mark.parametrize("fixed", [False, True])
def test_divpen_downweighting(fixed):
    sim = _divpen_world(fix_divpen_threshold=fixed)
    ones = torch.ones(3, 5)
    topics = torch.tensor([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 1, 2]])
    attr = sim.attractiveness(ones, topics)
    four = 1.0 if fixed else 1 / 3  # exactly 4 of one topic: >= 4 (official) vs > 4 (paper)
    assert_close(attr[:, 0], torch.tensor([four, 1 / 3, 1.0]))
    # end to end, with a repeated item: 4 slots of topic 0 (item 2 shown twice)
    sim.reset(3000)
    _, reward, _, _ = sim.step(torch.tensor([2, 2, 0, 1, 5]).repeat(3000, 1))
    rate = float(reward.mean()) / 5
    if fixed:
        assert rate == 1.0
    else:
        assert abs(rate - 1 / 3) < 0.02


# --------------------------------------------------------------------------- oracle, masks, CRN


def test_oracle_fill_of_minus_one_slots(shared_data):
    sim = released(shared_data, "focused_topdown")
    sim.reset(64)
    # at turn 1 no topic can be bored (reset clicks hit 10 distinct topics): u_eff = user
    top = (sim.user @ sim.item_embeddings.T).topk(10, dim=1).indices
    slate = torch.tensor([5, -1, 7, -1, -1, 9, 9, -1, 0, -1]).repeat(64, 1)
    obs, _, _, info = sim.step(slate)
    expected = torch.where(slate == -1, top, slate)
    assert torch.equal(obs["slate"], expected)
    assert not bool(info["bored"].any())


def test_bored_topics_are_masked_in_slate_scores(shared_data):
    sim = released(shared_data, "focused_topdown")
    sim.reset(200)
    bored_turns = 0
    for _ in range(30):
        user = sim.user.clone()  # scores use the user before this turn's influence
        obs, _, _, info = sim.step(torch.full((200, 10), -1))
        alive = (~info["bored"]).float().repeat_interleave(2, dim=1)  # topic k -> dims 2k, 2k+1
        expected = (sim.item_embeddings[obs["slate"]] @ (user * alive).unsqueeze(2)).squeeze(2) / sim.max_score
        assert_close(info["scores"], expected)
        bored_turns += int(info["bored"].any(1).sum())
    assert bored_turns > 0, "the short-term oracle should bore some users within 30 turns"


def test_relevances_mask_bug_and_fix(shared_data):
    for fixed, masked in ((False, [6, 7, 8]), (True, [6, 7])):
        sim = released(shared_data, "focused_topdown", fix_relevance_mask=fixed)
        sim.reset(1)
        user = sim.user.clone()
        sim.bored = torch.zeros(1, 10, dtype=torch.bool)
        sim.bored[0, 3] = True
        expected = user.clone()
        expected[0, masked] = 0
        want = torch.sigmoid(100 * (expected @ sim.item_embeddings.T / sim.max_score - 0.28))
        assert_close(sim.relevances(), want)
    # official bug: a bored topic 0 masks nothing
    sim = released(shared_data, "focused_topdown")
    sim.reset(1)
    sim.bored = torch.zeros(1, 10, dtype=torch.bool)
    sim.bored[0, 0] = True
    assert_close(sim.relevances(), sim.relevances(sim.user))


def test_common_random_numbers_across_policies_and_batches(shared_data):
    sim = released(shared_data, "focused_topdown")
    _, info_a = sim.reset(300, population="test")
    users_a = info_a["user_state"].clone()
    sim.step(RandomPolicy(1000, seed=1).act({"slate": torch.zeros(300, 10)}, {}))
    _, info_b = sim.reset(300, population="test")
    assert torch.equal(users_a, info_b["user_state"])
    _, info_c = sim.reset(100, population="test", user_offset=150)
    assert_close(info_c["user_state"], users_a[150:250])
    _, info_d = sim.reset(4, population="test", user_ids=torch.tensor([3, 3, 299, 0]))
    assert_close(info_d["user_state"], users_a[[3, 3, 299, 0]])
    with pytest.raises(ValueError, match="not both"):
        sim.reset(2, user_offset=1, user_ids=torch.tensor([0, 1]))
    whole = episode_returns(sim, ShortTermOracle(1000), 120)
    chunked = episode_returns(sim, ShortTermOracle(1000), 120, batch_size=50)
    assert torch.equal(whole, chunked)


def test_test_user_protocol_faithful_vs_disjoint(shared_data):
    sim = released(shared_data, "focused_topdown")
    _, test = sim.reset(5, population="test")
    _, logs = sim.reset(5, population="logs")
    assert torch.equal(test["user_state"], logs["user_state"])  # faithful: one shared stream
    sim = released(shared_data, "focused_topdown", mode="fixed")
    assert sim.fixes.disjoint_test_users
    _, test = sim.reset(5, population="test")
    _, logs = sim.reset(5, population="logs")
    assert not torch.allclose(test["user_state"], logs["user_state"])


def test_return_is_sum_of_100_rewards_and_episode_end(shared_data):
    sim = released(shared_data, "focused_mix")
    obs, _ = sim.reset(10)
    total, done, steps = torch.zeros(10), False, 0
    while not done:
        obs, reward, done, _ = sim.step(torch.full((10, 10), -1))
        assert torch.equal(reward, obs["clicks"].sum(1).float())
        total += reward
        steps += 1
    assert steps == 100
    with pytest.raises(RuntimeError, match="call reset"):
        sim.step(torch.full((10, 10), -1))


# --------------------------------------------------------------------------- sequential reference


class _OfficialUser:
    """One user stepped with the official code's logic (deques, per-slot loops), fed the same
    user vector and random numbers as the batched simulator."""

    def __init__(self, sim: TopicRecSimulator, b: int):
        self.sim, self.cfg, self.b = sim, sim.config, b
        self.uid = sim.user_ids[b : b + 1]
        self.u = sim.user[b].clone()

    def _clicks(self, rel, slate, counter):
        from collections import Counter

        attr = rel.clone()
        most = max(Counter(self.sim.item_topics[slate].tolist()).values())
        fixed = self.sim.fixes.divpen_threshold
        if (most > self.cfg.diversity_threshold) if fixed else (most >= self.cfg.diversity_threshold):
            attr = attr / self.sim.diversity_penalty
        draws = rng.uniforms(self.sim._click_key, self.uid, counter, 10)[0]
        return draws < attr * self.sim.examination

    def _rel(self, slate, u):
        return torch.sigmoid(100 * (self.sim.item_embeddings[slate] @ u / self.sim.max_score - 0.28))

    def reset(self):
        from collections import deque

        sim = self.sim
        self.t, self.bored, self.timer = 0, torch.zeros(10, dtype=torch.bool), torch.full((10,), 5)
        self.a, self.s = deque(maxlen=10), deque(maxlen=10)
        slate = sim.initial_slate
        clicks = self._clicks(self._rel(slate, self.u), slate, 0)
        clicked = torch.nonzero(clicks).flatten()
        self.a.extend(sim.item_topics[slate[clicked]].tolist())
        if sim.fixes.boredom_alignment:
            self.s.extend([0] * len(clicked))
        if len(clicked):
            self.st = int(sim.item_topics[slate[clicked[-1]]])
        else:
            self.st = int(rng.uniforms(sim._user_key, self.uid, 2, 1)[0, 0] * 10)
        return clicks

    def step(self, slate):
        sim = self.sim
        self.t += 1
        self.timer -= self.bored.long()
        self.bored &= self.timer != 0
        self.timer[~self.bored] = 5
        if self.a:
            counts = torch.bincount(torch.tensor(list(self.a)), minlength=10)
            self.bored[counts >= self.cfg.boredom_threshold] = True
        u = self.u.clone()
        for k in torch.nonzero(self.bored).flatten().tolist():
            u[2 * k : 2 * k + 2] = 0
        u[2 * self.st : 2 * self.st + 2] *= self.cfg.short_term_boost
        if bool((slate == -1).any()):
            slate = torch.where(slate == -1, (sim.item_embeddings @ u).topk(10).indices, slate)
        clicks = self._clicks(self._rel(slate, u), slate, self.t)
        clicked = torch.nonzero(clicks).flatten()
        self.a.extend(sim.item_topics[slate[clicked]].tolist())
        self.s.extend([self.t] * len(clicked))
        while self.s and self.s[0] < self.t - self.cfg.boredom_moving_window:
            self.a.popleft()
            self.s.popleft()
        for item in slate[clicked].tolist():
            self.u = 0.9 * self.u + 0.1 * sim.item_embeddings[item]
            self.u = self.u / self.u.view(10, 2).norm(dim=1).sum()
        if self.bored[self.st] and len(clicked):
            last = int(clicked[-1])
            self.st = int(sim.item_topics[slate[last]] if sim.fixes.short_term_update else sim.item_topics[last])
        return slate, clicks, self.bored.clone()


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_batched_simulator_equals_sequential_official_logic(shared_data, mode):
    # DivPen + a short-term boost of 2 so every code path (penalty, short-term bug) matters
    sim = released(shared_data, "focused_divpen", mode=mode, short_term_boost=2.0)
    users = 6
    obs, _ = sim.reset(users, user_offset=11)
    refs = [_OfficialUser(sim, b) for b in range(users)]
    for b, ref in enumerate(refs):
        assert torch.equal(ref.reset(), obs["clicks"][b].bool())
    gen = torch.Generator().manual_seed(5)
    bored_turns = switches = 0
    for _ in range(100):
        slate = torch.randint(0, 1000, (users, 10), generator=gen)
        slate[torch.rand(users, 10, generator=gen) < 0.6] = -1
        slate[:, 9] = slate[:, 8]  # duplicates are allowed
        obs, _, _, info = sim.step(slate)
        for b, ref in enumerate(refs):
            before = ref.st
            shown, clicks, bored = ref.step(slate[b])
            switches += ref.st != before
            bored_turns += bool(bored.any())
            assert torch.equal(obs["slate"][b], shown)
            assert torch.equal(obs["clicks"][b].bool(), clicks)
            assert torch.equal(info["bored"][b], bored)
            assert_close(info["user_state"][b], ref.u, atol=1e-6, rtol=1e-5)
    assert bored_turns > 20 and switches > 0  # boredom and the short-term update were exercised
    assert torch.equal(sim.short_term, torch.tensor([ref.st for ref in refs]))


# --------------------------------------------------------------------------- configs and bad input


def test_mode_switches_resolve():
    faithful = TopicRecConfig()
    assert not any(faithful.fixes)
    fixed = TopicRecConfig(mode="fixed")
    assert all(fixed.fixes)
    one = TopicRecConfig(fix_divpen_threshold=True)
    assert one.fixes.divpen_threshold and not one.fixes.relevance_mask
    off = TopicRecConfig(mode="fixed", disjoint_test_users=False)
    assert not off.fixes.disjoint_test_users and off.fixes.boredom_alignment
    assert not fixed.unit_l2_users and not fixed.paper_exam_exponents  # paper-text options stay opt-in
    cfg = variant_config("diffuse_divpen")
    assert (cfg.resolved_catalogue, cfg.resolved_click_model, cfg.resolved_diversity_penalty) == ("diffuse", "mixPBM", 3.0)


def test_unknown_env_name_suggests_nearest():
    with pytest.raises(ConfigError, match="did you mean 'focused_topdown'") as err:
        variant_config("focsed_topdown")
    assert "diffuse_divpen" in str(err.value)
    with pytest.raises(ConfigError, match="diversity_penalty"):
        TopicRecConfig(diversity_penalty=0.0)


def test_bad_slates_raise_clear_errors(shared_data):
    sim = released(shared_data, "focused_topdown")
    with pytest.raises(RuntimeError, match="reset"):
        sim.step(torch.zeros(2, 10, dtype=torch.long))
    sim.reset(2)
    with pytest.raises(ValueError, match="shape"):
        sim.step(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        sim.step(torch.zeros(3, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="1000 .* out of range"):
        sim.step(torch.full((2, 10), 1000))
    with pytest.raises(ValueError, match="-2 .* out of range"):
        sim.step(torch.full((2, 10), -2))
    with pytest.raises(ValueError, match="integer"):
        sim.step(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="integer"):
        sim.step(np.zeros((2, 10), dtype=bool))
    with pytest.raises(ValueError, match="Tensor or numpy"):
        sim.step([[0] * 10] * 2)
    assert sim.t == 0  # nothing advanced
    obs, *_ = sim.step(np.full((2, 10), 3, dtype=np.int16))
    assert obs["slate"].dtype == torch.long


def test_bad_embeddings_raise_clear_errors(tmp_path):
    bad = generate_embeddings().numpy()
    bad[17, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="non-finite.*first row 17"):
        TopicRecSimulator(TopicRecConfig(catalogue=str(tmp_path / "nan.npy")))
    np.save(tmp_path / "shape.npy", np.ones((1000, 21), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(1000, 21\)"):
        TopicRecSimulator(TopicRecConfig(catalogue=str(tmp_path / "shape.npy")))
    np.save(tmp_path / "small.npy", generate_embeddings(500).numpy())
    with pytest.raises(ValueError, match="set num_items=500"):
        TopicRecSimulator(TopicRecConfig(catalogue=str(tmp_path / "small.npy")))
    sim = TopicRecSimulator(TopicRecConfig(catalogue=str(tmp_path / "small.npy"), num_items=500))
    assert sim.reset(3)[0]["slate"].shape == (3, 10)
    with pytest.raises(FileNotFoundError, match="do not exist"):
        TopicRecSimulator(TopicRecConfig(catalogue=str(tmp_path / "missing.npy")))
