"""GeMS Table 2 at the budget of ``configs/slate/table2/sweep_budget*.yaml`` (10,000 steps per seed):
for every (method, environment, steps, alpha variant) the seeds, their test returns in the same
order, mean ± 95% t-CI, and each seed's validation curve (eval/return vs step), written to
``benchmarks/results/slate_table2_budget.json``. Only finished runs count; the sweeps are resumable,
so the file grows as cells finish (a cell may list fewer than 5 seeds until then).

    rl4rec sweep configs/slate/table2/sweep_budget.yaml
    rl4rec sweep configs/slate/table2/sweep_budget_fixed_alpha.yaml
    python benchmarks/slate_table2_budget.py
"""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path

import torch

from _runs import sweep_args
from rl4rec.experiments.report import collect
from rl4rec.metrics.stats import mean_ci
from slate_table2 import PAPER, cpu_model

ROOT = Path(__file__).resolve().parents[1]
#: experiment -> alpha variant
EXPERIMENTS = {"table2_budget": "faithful", "table2_budget_fixed_alpha": "fixed_alpha_init"}
ENV_INDEX = {"focused_topdown": 0, "focused_mix": 1, "focused_divpen": 2}


def main() -> None:
    args = sweep_args(__doc__, "table2_budget", ROOT / "benchmarks" / "results" / "slate_table2_budget.json")
    cells: dict[tuple, dict] = defaultdict(lambda: {"seeds": [], "test_returns": [], "val_curves": []})
    overrides = {}
    for experiment, alpha in EXPERIMENTS.items():
        exp_dir = Path(args.runs_dir) / experiment
        if not exp_dir.is_dir():
            continue
        records, manifest = collect(exp_dir)
        overrides[experiment] = list(manifest.get("sweep", {}).get("overrides", []))
        for r in records:
            if r.status != "finished" or "test/return" not in r.results:
                continue
            cell = cells[(r.method, r.column, int(r.config.get("steps", 0)), alpha)]
            cell["seeds"].append(r.seed)
            cell["test_returns"].append(r.results["test/return"])
            cell["val_curves"].append(r.curves.get("eval/return", []))
    rows = []
    for (method, env, steps, alpha), cell in cells.items():
        ci = mean_ci(cell["test_returns"]) if len(cell["test_returns"]) > 1 else None
        paper = PAPER.get(method, (None,) * 3)[ENV_INDEX[env]] if env in ENV_INDEX else None
        rows.append({"method": method, "env": env, "steps": steps, "alpha": alpha, **cell,
                     "mean": ci.mean if ci else cell["test_returns"][0], "ci95": ci.half_width if ci else None,
                     "paper_100k_steps": paper})
    result = {
        "claim": "GeMS Table 2 on focused TopDown at 10,000 steps per seed (the paper: 100,000), one run per seed, test return on "
                 "the 500 test users; faithful simulator, the paper's alpha init (faithful) and hp.fix_alpha_init=true",
        "commands": ["rl4rec sweep configs/slate/table2/sweep_budget.yaml", "rl4rec sweep configs/slate/table2/sweep_budget_fixed_alpha.yaml",
                     "python benchmarks/slate_table2_budget.py"],
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "torch": torch.__version__},
        "sweep_overrides": overrides,
        "rows": rows,
        "notes": ["only finished runs are listed; a cell with fewer than 5 seeds is still running in the resumable sweep",
                  "paper_100k_steps: GeMS (WSDM 2023) Table 2 at 100,000 steps, not the budget of these rows"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}: {len(rows)} cells, {sum(len(r['seeds']) for r in rows)} finished runs")
    for r in rows:
        ci = f" ± {r['ci95']:.1f}" if r["ci95"] is not None else ""
        print(f"{r['method']:<20} {r['env']} {r['steps']} {r['alpha']}: {r['mean']:.1f}{ci} over {len(r['seeds'])} seeds")


if __name__ == "__main__":
    main()
