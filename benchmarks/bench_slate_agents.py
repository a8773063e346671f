"""Seconds per training step (one 100-turn episode + one update on 20 trajectories) of the slate
agents, one thread, with 1 seed and with N seeds batched in one process.

Reference: the official GeMS code needs 0.254 s per SAC+GeMS step on one core of this machine
(spec performance note). Writes benchmarks/results/slate_agents.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from rl4rec.allocator import keep_freed_memory
from rl4rec.config import apply_overrides
from rl4rec.slate.agents import SACAgent
from rl4rec.slate.buffer import TrajectoryBuffer
from rl4rec.slate.loop import run_episodes
from rl4rec.slate.nets import EnsembleGRU
from rl4rec.slate.rankers import GeMS, GeMSConfig
from rl4rec.slate.train import SlateTrainConfig, build_agent, make_sim

OFFICIAL_SAC_GEMS_S_PER_STEP = 0.254
METHODS = {
    "SAC+GeMS": ["agent=sac", "ranker=gems"],
    "SAC+TopK(ideal)": ["agent=sac", "ranker=topk_ideal"],
    "REINFORCE+SoftMax": ["agent=reinforce", "ranker=softmax"],
    "SlateQ": ["agent=slateq", "ranker=none"],
}


def make_agent(overrides: list[str], seeds: tuple[int, ...], compiled: bool = False):
    cfg = apply_overrides(SlateTrainConfig, {}, [*overrides, f"compile={str(compiled).lower()}"])
    sim = make_sim(cfg)
    if cfg.ranker == "gems":  # an untrained GeMS costs the same per step as a pretrained one
        gems = GeMS(seeds, sim.num_items, sim.rec_size, GeMSConfig()).requires_grad_(False)
        s = len(seeds)
        agent = SACAgent(seeds, cfg.hp, gems, torch.zeros(s, 32), torch.ones(s, 32), sim.num_items, sim.rec_size)
    else:
        agent = build_agent(cfg, sim, seeds)
    if cfg.compile:  # as SlateTask does
        sim.compile_turns()
        agent.compile_turns()
    return cfg, sim, agent


def setup(overrides: list[str], num_seeds: int, compiled: bool = False):
    """Agent, its replay buffer and ``episode(i)``, which plays user ``i`` once per seed and stores it."""
    seeds = tuple(range(1, num_seeds + 1))
    cfg, sim, agent = make_agent(overrides, seeds, compiled)
    cap, batch = (1, 1) if agent.on_policy else (200, cfg.batch_size)
    buf = TrajectoryBuffer(num_seeds, cap, 100, 10, agent.action_shape, agent.action_dtype, 20 if agent.needs_users else 0)

    def episode(i: int) -> None:
        _, tr = run_episodes(agent, sim, torch.tensor([i]), num_seeds, population="train", deterministic=False, iteration=5000, record=True)
        buf.add(tr)

    return agent, buf, batch, episode


def seconds_per_step(overrides: list[str], num_seeds: int, steps: int, warmup: int) -> float:
    agent, buf, batch, episode = setup(overrides, num_seeds)
    gen = torch.Generator().manual_seed(0)

    def one(i: int, update: bool) -> None:
        episode(i)
        if update:
            agent.update(buf.sample(batch, gen), 5000)

    for i in range(max(warmup, batch)):
        one(i, update=i >= batch)
    t0 = time.perf_counter()
    for i in range(steps):
        one(1000 + i, update=True)
    return (time.perf_counter() - t0) / steps


def split_sac_gems(num_seeds: int, steps: int) -> dict[str, float]:
    """Milliseconds of the episode and of the update of one SAC+GeMS step, measured apart."""
    agent, buf, batch, episode = setup(METHODS["SAC+GeMS"], num_seeds)
    gen = torch.Generator().manual_seed(0)
    for i in range(batch):
        episode(i)
    agent.update(buf.sample(batch, gen), 5000)
    t0 = time.perf_counter()
    for i in range(steps):
        episode(100 + i)
    t1 = time.perf_counter()
    for _ in range(steps):
        agent.update(buf.sample(batch, gen), 5000)
    t2 = time.perf_counter()
    return {"episode_ms": (t1 - t0) / steps * 1000, "update_ms": (t2 - t1) / steps * 1000}


def update_matmul_floor_ms(num_seeds: int, reps: int = 10) -> float:
    """Milliseconds of the matrix products alone of one SAC+GeMS update (forward and backward,
    paper sizes, batch 20 x 100 turns), without autograd or any elementwise op: a lower bound
    for the update on this machine."""
    s, n, a, state, hidden, feats = num_seeds, 20 * 100, 32, 20, 256, 10 * 21
    q = [(state + a, hidden), (hidden, 1)]
    forward_only = q * 2 + [(state, hidden), (hidden, 2 * a)]  # target Q1, Q2 and a' ~ pi(s')
    with_backward = q * 2 + [(state, hidden), (hidden, 2 * a)] + q * 2 + [(feats, 3 * state)] * 2  # Q, pi, Q(s, pi), beliefs
    mats = [(torch.randn(s, n, i), torch.randn(s, i, o), False) for i, o in forward_only]
    mats += [(torch.randn(s, n, i), torch.randn(s, i, o), True) for i, o in with_backward]

    def run() -> None:
        for x, w, backward in mats:
            y = torch.bmm(x, w)
            if backward:  # gradient of the input and of the weight
                torch.bmm(y, w.transpose(1, 2))
                torch.bmm(x.transpose(1, 2), y)

    run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return (time.perf_counter() - t0) / reps * 1000


def gru_fused_vs_unrolled(num_seeds: int, reps: int = 10) -> dict[str, float]:
    """Forward + backward of one belief GRU over a batch (20 x 100 turns): the fused sequence
    node against the same cell unrolled under autograd (the previous implementation)."""
    gru = EnsembleGRU(tuple(range(num_seeds)), 10 * 21, 20, "bench")
    x = torch.randn(num_seeds, 20, 100, 10 * 21)

    def fused() -> None:
        gru(x).sum().backward()

    def unrolled() -> None:
        gi, h, outs = gru.input_proj(x), x.new_zeros(num_seeds, 20, 20), []
        for step in range(100):
            h = gru.cell(gi[:, :, step], h)
            outs.append(h)
        torch.stack(outs, 2).sum().backward()

    out = {}
    for name, fn in (("fused_ms", fused), ("unrolled_ms", unrolled)):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = (time.perf_counter() - t0) / reps * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=22)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/slate_agents.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as every run does (rl4rec.allocator)
    rows = []
    for name, overrides in METHODS.items():
        one = seconds_per_step(overrides, 1, args.steps, args.warmup)
        many = seconds_per_step(overrides, args.seeds, args.steps, args.warmup)
        rows.append({"method": name, "s_per_step_1_seed": one, f"s_per_step_{args.seeds}_seeds": many, "batched_over_single": many / one})
        print(f"{name}: {one * 1000:.1f} ms/step (1 seed), {many * 1000:.1f} ms/step ({args.seeds} seeds batched)", flush=True)
    breakdown = []
    for s in (1, args.seeds):
        split = split_sac_gems(s, args.steps)
        split["update_matmul_floor_ms"] = update_matmul_floor_ms(s)
        split.update(gru_fused_vs_unrolled(s))
        breakdown.append({"seeds": s, **split})
        print(f"SAC+GeMS, {s} seed(s): {split}", flush=True)
    result = {
        "what": "seconds per training step (1 episode of 100 turns + 1 update on 20 trajectories), one torch thread",
        "official_sac_gems_s_per_step": OFFICIAL_SAC_GEMS_S_PER_STEP,
        "seeds_batched": args.seeds,
        "steps_timed": args.steps,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "sac_gems_breakdown": breakdown,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    n = args.seeds
    print(f"\n| method | ms/step, 1 seed | ms/step, {n} seeds batched | ms per seed-step, batched | wall time of {n} seeds vs 1 | vs official 254 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        many = r[f"s_per_step_{n}_seeds"]
        print(f"| {r['method']} | {r['s_per_step_1_seed'] * 1000:.1f} | {many * 1000:.1f} | {many / n * 1000:.1f} | {r['batched_over_single']:.2f}x | {OFFICIAL_SAC_GEMS_S_PER_STEP / (many / n):.0f}x faster per seed |")
    print("\n| SAC+GeMS, seeds | episode ms | update ms | update's matmuls alone ms | belief GRU fwd+bwd: fused ms | unrolled autograd ms |")
    print("|---|---|---|---|---|---|")
    for b in breakdown:
        print(f"| {b['seeds']} | {b['episode_ms']:.1f} | {b['update_ms']:.1f} | {b['update_matmul_floor_ms']:.1f} | {b['fused_ms']:.1f} | {b['unrolled_ms']:.1f} |")


if __name__ == "__main__":
    main()
