"""The compiled episode turn (``compile=true``) against the eager reference: same episodes."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from rl4rec.config import apply_overrides
from rl4rec.slate.agents import ReferenceAgent, SACAgent
from rl4rec.slate.loop import run_episodes
from rl4rec.slate.rankers import GeMS, GeMSConfig
from rl4rec.slate.train import SlateTrainConfig, make_sim

SEEDS = (3, 4)


def _sac_gems(compiled: bool):
    """SAC over an untrained GeMS (the turn's work is the same as over a pretrained one)."""
    torch.manual_seed(0)
    sim = make_sim(apply_overrides(SlateTrainConfig, {}, []))
    gems = GeMS(SEEDS, sim.num_items, sim.rec_size, GeMSConfig()).requires_grad_(False)
    agent = SACAgent(
        SEEDS,
        apply_overrides(SlateTrainConfig, {}, []).hp,
        gems,
        torch.zeros(2, 32),
        torch.ones(2, 32),
        sim.num_items,
        sim.rec_size,
    )
    if compiled:
        sim.compile_turns()
        agent.compile_turns()
    return agent, sim


def _episodes(agent, sim, deterministic: bool):
    return run_episodes(
        agent,
        sim,
        torch.arange(3),
        len(SEEDS),
        population="train",
        deterministic=deterministic,
        iteration=5000,
        record=True,
    )


def test_compiled_sac_gems_episode_equals_eager():
    (eager_agent, eager_sim), (comp_agent, comp_sim) = _sac_gems(False), _sac_gems(True)
    for deterministic in (False, True):  # sampled (noise drawn eagerly, same stream) and greedy
        ret_e, tr_e = _episodes(eager_agent, eager_sim, deterministic)
        ret_c, tr_c = _episodes(comp_agent, comp_sim, deterministic)
        assert torch.equal(tr_e.slates, tr_c.slates)
        assert torch.equal(tr_e.step_clicks, tr_c.step_clicks)
        assert torch.equal(ret_e, ret_c) and float(ret_e.sum()) > 0
        assert_close(tr_c.actions, tr_e.actions, rtol=1e-5, atol=1e-5)
    # the compiled agent's generator advanced exactly as the eager one's
    assert torch.equal(eager_agent.generator.get_state(), comp_agent.generator.get_state())


def test_compiled_oracle_fill_equals_eager():
    """The short-term oracle (-1 slots filled inside the compiled turn) and a random policy."""
    for kind in ("sto", "random"):
        out = []
        for compiled in (False, True):
            sim = make_sim(apply_overrides(SlateTrainConfig, {}, []))
            agent = ReferenceAgent(kind, 2, sim.num_items, sim.rec_size, 7)
            if compiled:
                sim.compile_turns()
            out.append(_episodes(agent, sim, True))
        (ret_e, tr_e), (ret_c, tr_c) = out
        assert torch.equal(ret_e, ret_c) and torch.equal(tr_e.slates, tr_c.slates)
        if kind == "sto":  # the oracle beats the random policy by far
            assert float(ret_e.mean()) > 50
