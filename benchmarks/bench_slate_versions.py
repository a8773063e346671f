"""Seconds per SAC+GeMS training step of two code revisions, measured alternately in one session.

The machine is noisy (a shared VM: the same benchmark varies by ±20% between runs), so a speed-up
is only claimed from a ratio measured in one session: each round runs the old revision, then the
current tree, in fresh one-thread processes with the same setting as bench_slate_agents.py.
Writes benchmarks/results/slate_versions.json.

    python benchmarks/bench_slate_versions.py --old 42f2b27 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run inside the tree under test; the current tree also calls keep_freed_memory, as its runs do
_PROBE = r"""
import json, sys, torch
tree = sys.argv[1]
sys.path[:0] = [tree + "/src", tree + "/benchmarks"]
torch.set_num_threads(1)
try:
    from rl4rec.allocator import keep_freed_memory
    keep_freed_memory()
except ImportError:
    pass
from bench_slate_agents import METHODS, seconds_per_step
one = seconds_per_step(METHODS["SAC+GeMS"], 1, int(sys.argv[2]), 21)
many = seconds_per_step(METHODS["SAC+GeMS"], int(sys.argv[3]), int(sys.argv[2]) // 2, 21)
print(json.dumps([one, many]))
"""


def measure(tree: Path, steps: int, seeds: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tree), str(steps), str(seeds)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark of {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="git revision to compare against (checked out in a temporary worktree)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps with one seed (half as many with N seeds)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/slate_versions.json")
    args = parser.parse_args()
    res: dict[str, list[list[float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.old], cwd=ROOT, check=True)
        try:
            for r in range(args.rounds):
                for name, tree in (("old", old), ("new", ROOT)):
                    res[name].append(measure(tree, args.steps, args.seeds))
                    print(f"round {r + 1} {name}: {res[name][-1][0] * 1000:.1f} ms (1 seed), {res[name][-1][1] * 1000:.1f} ms ({args.seeds} seeds)", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    med = {k: [statistics.median(v[i] for v in res[k]) for i in range(2)] for k in res}
    result = {"old_revision": args.old, "seeds_batched": args.seeds, "rounds": res, "median_s_per_step": med,
              "speedup_1_seed": med["old"][0] / med["new"][0], f"speedup_{args.seeds}_seeds": med["old"][1] / med["new"][1]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\n| SAC+GeMS ms/step | {args.old} | current | speed-up |\n|---|---|---|---|")
    for i, label in enumerate(("1 seed", f"{args.seeds} seeds batched")):
        print(f"| {label} | {med['old'][i] * 1000:.1f} | {med['new'][i] * 1000:.1f} | {med['old'][i] / med['new'][i]:.2f}x |")


if __name__ == "__main__":
    main()
