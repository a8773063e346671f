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

from rl4rec.config import apply_overrides
from rl4rec.slate.agents import SACAgent
from rl4rec.slate.buffer import TrajectoryBuffer
from rl4rec.slate.loop import run_episodes
from rl4rec.slate.rankers import GeMS, GeMSConfig
from rl4rec.slate.train import SlateTrainConfig, build_agent, make_sim

OFFICIAL_SAC_GEMS_S_PER_STEP = 0.254
METHODS = {
    "SAC+GeMS": ["agent=sac", "ranker=gems"],
    "SAC+TopK(ideal)": ["agent=sac", "ranker=topk_ideal"],
    "REINFORCE+SoftMax": ["agent=reinforce", "ranker=softmax"],
    "SlateQ": ["agent=slateq", "ranker=none"],
}


def make_agent(overrides: list[str], seeds: tuple[int, ...]):
    cfg = apply_overrides(SlateTrainConfig, {}, overrides)
    sim = make_sim(cfg)
    if cfg.ranker == "gems":  # an untrained GeMS costs the same per step as a pretrained one
        gems = GeMS(seeds, sim.num_items, sim.rec_size, GeMSConfig()).requires_grad_(False)
        s = len(seeds)
        agent = SACAgent(seeds, cfg.hp, gems, torch.zeros(s, 32), torch.ones(s, 32), sim.num_items, sim.rec_size)
    else:
        agent = build_agent(cfg, sim, seeds)
    return cfg, sim, agent


def seconds_per_step(overrides: list[str], num_seeds: int, steps: int, warmup: int) -> float:
    seeds = tuple(range(1, num_seeds + 1))
    cfg, sim, agent = make_agent(overrides, seeds)
    s = len(seeds)
    cap, batch = (1, 1) if agent.on_policy else (200, cfg.batch_size)
    buf = TrajectoryBuffer(s, cap, 100, 10, agent.action_shape, agent.action_dtype, 20 if agent.needs_users else 0)
    gen = torch.Generator().manual_seed(0)

    def one(i: int, update: bool) -> None:
        _, tr = run_episodes(agent, sim, torch.tensor([i]), s, population="train", deterministic=False, iteration=5000, record=True)
        buf.add(tr.slates[:, 0], tr.clicks[:, 0], tr.actions[:, 0], tr.rewards[:, 0], tr.step_clicks[:, 0], None if tr.users is None else tr.users[:, 0])
        if update:
            agent.update(buf.sample(batch, gen), 5000)

    for i in range(max(warmup, batch)):
        one(i, update=i >= batch)
    t0 = time.perf_counter()
    for i in range(steps):
        one(1000 + i, update=True)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=22)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/slate_agents.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, overrides in METHODS.items():
        one = seconds_per_step(overrides, 1, args.steps, args.warmup)
        many = seconds_per_step(overrides, args.seeds, args.steps, args.warmup)
        rows.append({"method": name, "s_per_step_1_seed": one, f"s_per_step_{args.seeds}_seeds": many, "batched_over_single": many / one})
        print(f"{name}: {one * 1000:.1f} ms/step (1 seed), {many * 1000:.1f} ms/step ({args.seeds} seeds batched)", flush=True)
    result = {
        "what": "seconds per training step (1 episode of 100 turns + 1 update on 20 trajectories), one torch thread",
        "official_sac_gems_s_per_step": OFFICIAL_SAC_GEMS_S_PER_STEP,
        "seeds_batched": args.seeds,
        "steps_timed": args.steps,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    n = args.seeds
    print(f"\n| method | ms/step, 1 seed | ms/step, {n} seeds batched | ms per seed-step, batched | wall time of {n} seeds vs 1 | vs official 254 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        many = r[f"s_per_step_{n}_seeds"]
        print(f"| {r['method']} | {r['s_per_step_1_seed'] * 1000:.1f} | {many * 1000:.1f} | {many / n * 1000:.1f} | {r['batched_over_single']:.2f}x | {OFFICIAL_SAC_GEMS_S_PER_STEP / (many / n):.0f}x faster per seed |")


if __name__ == "__main__":
    main()
