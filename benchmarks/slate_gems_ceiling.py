"""What slates a pretrained GeMS can express: the ceiling of SAC+GeMS's action space.

SAC+GeMS acts in GeMS's latent box and the decoder turns an action into a slate, so the agent can
only reach slates the decoder produces. For the GeMS of a finished ``slate train`` run (its best
checkpoint) on its environment, and users at their first turn:

- ``best_of_box``: per user, the highest summed relevance among the slates decoded from
  ``--actions`` latent actions drawn uniformly in the run's action box (an optimistic ceiling for
  a perfect actor restricted to those samples), over the summed relevance of the user's 10 most
  relevant items (what TopK(ideal) can express); ``best_of_uniform_slates``, the same for as many
  uniformly random slates (the control);
- ``distinct_items``: how many of the 1,000 items appear in any of those decoded slates, and the
  mean number of distinct items per decoded slate (GeMS decodes each slot by argmax, repeats allowed);
- ``roundtrip``: the user's ideal slate encoded (clicks 1 on its relevant items) and decoded from
  the mean, its summed relevance over the ideal's.

Writes benchmarks/results/slate_gems_ceiling.json.

    python benchmarks/slate_gems_ceiling.py runs/table2_budget/sac-gems_focused-topdown_*_seed58407201 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rl4rec.runs import RunDir, config_of, load_checkpoint
from rl4rec.slate.rankers.gems import GeMS
from rl4rec.slate.train import SlateTrainConfig, make_sim

ROOT = Path(__file__).resolve().parents[1]


def load_gems(run_dir: Path) -> tuple[SlateTrainConfig, GeMS, torch.Tensor, torch.Tensor]:
    cfg = config_of(SlateTrainConfig, run_dir)
    agent = load_checkpoint(RunDir(run_dir).checkpoint("best"))["task"]["agent"]
    gems = GeMS(cfg.seed_list, 1000, 10, cfg.gems)
    gems.load_state_dict({k.removeprefix("ranker."): v for k, v in agent.items() if k.startswith("ranker.")})
    return cfg, gems.eval(), agent["center"], agent["scale"]


@torch.no_grad()
def ceiling(run_dir: Path, users: int, actions: int, seed: int) -> dict:
    cfg, gems, center, scale = load_gems(run_dir)
    sim = make_sim(cfg)
    sim.reset(users, population="test")
    rel = sim.relevances()  # (B, N) at the first turn
    ideal = rel.topk(10, dim=1)
    ideal_sum = ideal.values.sum(1)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(1, actions, center.shape[-1], generator=gen)
    slates = gems.rank(center.unsqueeze(1) + scale.unsqueeze(1) * (2 * u - 1))[0]  # (M, K)
    uniform = torch.randint(0, rel.shape[1], slates.shape, generator=gen)  # the control: as many uniformly random slates

    def best_of(cands: torch.Tensor) -> torch.Tensor:
        best = torch.full((users,), -1.0)
        for i in range(0, len(cands), 2000):  # (B, chunk, K) gathers, chunked for memory
            best = torch.maximum(best, rel[:, cands[i : i + 2000]].sum(-1).amax(1))
        return best

    best, best_uniform = best_of(slates), best_of(uniform)
    ordered = slates.sort(1).values
    per_slate = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(1).float()  # distinct items per decoded slate
    clicks = (rel.gather(1, ideal.indices) > 0.5).float()
    mu, _ = gems.encode(ideal.indices.unsqueeze(0), clicks.unsqueeze(0))
    back = gems.rank(mu)[0]
    return {
        "run": run_dir.name, "env": cfg.env, "seed": cfg.seed, "users": users, "actions": actions,
        "ideal_relevance_sum": float(ideal_sum.mean()),
        "best_of_box": float((best / ideal_sum).mean()),
        "best_of_uniform_slates": float((best_uniform / ideal_sum).mean()),
        "roundtrip": float((rel.gather(1, back).sum(1) / ideal_sum).mean()),
        "distinct_items": int(slates.unique().numel()),
        "distinct_per_slate": float(per_slate.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished SAC+GeMS run folders")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--actions", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "slate_gems_ceiling.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [ceiling(Path(r), args.users, args.actions, args.seed) for r in args.runs]
    result = {
        "claim": "the slates a pretrained GeMS decodes from its RL action box, against the users' 10 most relevant items "
                 "(summed relevance at the first turn, test users)",
        "command": "python benchmarks/slate_gems_ceiling.py " + " ".join(args.runs),
        "rows": rows,
        "notes": ["best_of_box: the best of the sampled actions' slates per user, over the ideal slate's summed relevance",
                  "roundtrip: the ideal slate encoded (clicks on its relevant items) and decoded from the mean",
                  "GeMS of each run's best checkpoint (pretrained on the run's 10,000 logged sessions, 10 epochs)"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['run']}: best of {r['actions']} box actions {r['best_of_box']:.3f} of ideal "
              f"(uniform slates {r['best_of_uniform_slates']:.3f}), roundtrip {r['roundtrip']:.3f}, "
              f"{r['distinct_items']} distinct items, {r['distinct_per_slate']:.1f} distinct per slate")


if __name__ == "__main__":
    main()
