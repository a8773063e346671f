"""Compiled against eager episode turns (``compile=true``), SAC+GeMS, one thread, in one run.

Eager and compiled agents are built side by side and timed in alternating rounds, so the ratio
is measured under the same machine load (the shared VM's speed varies about 2x between days).
Per number of batched seeds: milliseconds of one 100-turn training episode, of one whole step
(episode + one update on 20 trajectories; the update is eager in both), and the compile time
(the first episode's wall time minus a warm one's). Writes benchmarks/results/slate_compiled.json.

    python benchmarks/bench_slate_compiled.py --seeds 1 2 5 10 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from bench_slate_agents import METHODS, setup
from rl4rec.allocator import keep_freed_memory


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1000


def time_arm(arm, base: int, n: int) -> tuple[float, float]:
    """Milliseconds of one episode and of one step (episode + update) of an arm, on fresh users."""
    agent, buf, batch, episode, gen, _ = arm

    def step(i: int) -> None:
        episode(base + 50 + i)
        agent.update(buf.sample(batch, gen), 5000)

    return timed(lambda i: episode(base + i), n), timed(step, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10, help="timed episodes (and steps) per round")
    parser.add_argument("--out", default="benchmarks/results/slate_compiled.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    rows = []
    for s in args.seeds:
        arms, compile_s = {}, None
        for compiled in (False, True):
            agent, buf, batch, episode = setup(METHODS["SAC+GeMS"], s, compiled)
            t0 = time.perf_counter()
            episode(0)
            first = time.perf_counter() - t0
            for i in range(1, batch + 1):  # fill the buffer; later shapes are compiled here too
                episode(i)
            gen = torch.Generator().manual_seed(0)
            agent.update(buf.sample(batch, gen), 5000)
            arms[compiled] = (agent, buf, batch, episode, gen, first)
        times = {False: {"episode": [], "step": []}, True: {"episode": [], "step": []}}
        for r in range(args.rounds):
            for compiled in (False, True):
                episode_ms, step_ms = time_arm(arms[compiled], 1000 * (r + 1) + 100 * compiled, args.episodes)
                times[compiled]["episode"].append(episode_ms)
                times[compiled]["step"].append(step_ms)
        med = {c: {k: statistics.median(v) for k, v in t.items()} for c, t in times.items()}
        compile_s = arms[True][5] - med[True]["episode"] / 1000
        row = {
            "seeds": s,
            "eager_episode_ms": med[False]["episode"],
            "compiled_episode_ms": med[True]["episode"],
            "episode_speedup": med[False]["episode"] / med[True]["episode"],
            "eager_step_ms": med[False]["step"],
            "compiled_step_ms": med[True]["step"],
            "step_speedup": med[False]["step"] / med[True]["step"],
            "compile_s": compile_s,
            "rounds": {"eager": times[False], "compiled": times[True]},
        }
        rows.append(row)
        print(
            f"{s} seed(s): episode {row['eager_episode_ms']:.1f} -> {row['compiled_episode_ms']:.1f} ms ({row['episode_speedup']:.2f}x), "
            f"step {row['eager_step_ms']:.1f} -> {row['compiled_step_ms']:.1f} ms ({row['step_speedup']:.2f}x), compile {compile_s:.1f} s",
            flush=True,
        )
    result = {
        "what": "SAC+GeMS on focused TopDown, one torch thread: eager vs compiled episode turns, alternating rounds in one process (medians)",
        "command": "python benchmarks/bench_slate_compiled.py "
        + " ".join(
            f"--seeds {' '.join(map(str, args.seeds))} --rounds {args.rounds} --episodes {args.episodes}".split()
        ),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        "\n| seeds batched | eager episode ms | compiled episode ms | ratio | eager step ms | compiled step ms | ratio | compile s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seeds']} | {r['eager_episode_ms']:.1f} | {r['compiled_episode_ms']:.1f} | {r['episode_speedup']:.2f}x | "
            f"{r['eager_step_ms']:.1f} | {r['compiled_step_ms']:.1f} | {r['step_speedup']:.2f}x | {r['compile_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
