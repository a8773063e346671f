"""Speed of the batched TopicRec simulator, one torch thread.

Claim: the batched simulator runs >= 240,000 user-turns/s with 1,024 users (the official
sequential simulator does about 2,400 turns/s on this 2-core machine) and generates the
100,000-session logged dataset in under 2 minutes (official: about 20 sessions/s, 85 minutes).
Measures user-turns/s for B = 1,024 users stepped together and for a one-user-at-a-time loop of
the same code (B = 1), per reference policy, and the wall time of ``generate_logs`` (epsilon-
greedy oracle, the logging policy). Writes benchmarks/results/simulator.json.

    .venv/bin/python benchmarks/bench_simulator.py [--log-sessions 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from rl4rec.slate.env.config import variant_config
from rl4rec.slate.env.simulator import TopicRecSimulator
from rl4rec.slate.logs import generate_logs
from rl4rec.slate.policies import make_policy

OFFICIAL_TURNS_PER_S = 2400
OFFICIAL_LOG_MINUTES = 85


def turns_per_second(sim: TopicRecSimulator, policy_name: str, users: int, steps: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of ``steps`` turns (resets excluded, episodes restarted as needed)."""
    policy = make_policy(policy_name, sim.num_items, sim.rec_size, seed=0)
    best = 0.0
    for _ in range(repeats):
        obs, info = sim.reset(users)
        elapsed, done_steps = 0.0, 0
        while done_steps < steps:
            if sim.done:
                obs, info = sim.reset(users, user_offset=done_steps)
            start = time.perf_counter()
            obs, _, _, info = sim.step(policy.act(obs, info))
            elapsed += time.perf_counter() - start
            done_steps += 1
        best = max(best, users * steps / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1024)
    parser.add_argument("--log-sessions", type=int, default=100_000, help="sessions to generate (the time is extrapolated to 100,000 when fewer)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "simulator.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]  # other processes on the machine slow every number down
    sim = TopicRecSimulator(variant_config("focused_topdown"))
    rows = []
    for policy in ("random", "sto", "eps_oracle"):
        batched = turns_per_second(sim, policy, args.users, steps=100)
        single = turns_per_second(sim, policy, 1, steps=300)
        rows.append({"policy": policy, "batched_users": args.users, "batched_user_turns_per_s": round(batched), "single_user_turns_per_s": round(single), "speedup": round(batched / single, 1)})
        print(f"{policy:10s}  B={args.users}: {batched:>10,.0f} user-turns/s   B=1: {single:>8,.0f}   x{batched / single:.0f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_logs(variant_config("focused_topdown"), args.log_sessions, Path(tmp) / "logs", progress=False)
        seconds = time.perf_counter() - start
    per_100k = seconds * 100_000 / args.log_sessions
    print(f"generate_logs: {args.log_sessions} sessions in {seconds:.1f}s ({'measured' if args.log_sessions == 100_000 else 'extrapolated'}: {per_100k:.1f}s per 100,000)")
    result = {
        "env": "focused_topdown",
        "mode": "faithful",
        "threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "official_turns_per_s": OFFICIAL_TURNS_PER_S,
        "step_throughput": rows,
        "logs": {
            "policy": "eps_oracle (epsilon 0.5 per slot), batch 4096",
            "sessions_generated": args.log_sessions,
            "seconds": round(seconds, 1),
            "seconds_per_100k_sessions": round(per_100k, 1),
            "extrapolated": args.log_sessions != 100_000,
            "official_minutes_per_100k": OFFICIAL_LOG_MINUTES,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
