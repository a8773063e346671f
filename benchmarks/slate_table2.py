"""GeMS Table 2 at a laptop budget: the test return of every (method, environment) cell of a finished
slate sweep, mean ± 95% t-CI over its seeds, beside the paper's value, written to
``benchmarks/results/slate_table2_laptop.json`` (the docs' slate results page is generated from it).

    rl4rec sweep configs/slate/table2/sweep_laptop.yaml          # about an hour on one core; resumable
    python benchmarks/slate_table2.py                            # reads runs/table2_laptop

The budget is 500 steps per seed against the paper's 100,000: these are not the paper's numbers, and
the ``paper`` column is there to show how far from them a laptop budget is.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from _runs import sweep_args
from rl4rec.experiments.report import collect, metric_table

ROOT = Path(__file__).resolve().parents[1]
SWEEP = "configs/slate/table2/sweep_laptop.yaml"
#: GeMS paper, Table 2 (test return, 100K steps), per method and environment; None: not given
PAPER = {
    "SAC+GeMS": (305.3, 242.6, 254.1),
    "SAC+TopK(ideal)": (429.0, 384.1, 386.3),
    "SAC+TopK(MF)": (254.4, 232.7, 242.2),
    "REINFORCE+SoftMax": (248.1, 233.5, 249.1),
    "SAC+GeMS(gamma=0)": (194.3, None, None),
    "STO": (107.7, None, None),
}
ENVS = ("focused_topdown", "focused_mix", "focused_divpen")


def cpu_model() -> str:
    """The CPU's model name: learned slate agents give other numbers on other CPUs (slate_table2_rerun.json)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    args = sweep_args(__doc__, "table2_laptop", ROOT / "benchmarks" / "results" / "slate_table2_laptop.json")
    records, manifest = collect(Path(args.runs_dir) / args.experiment)
    table = metric_table(records, "test/return")
    rows = []
    for method in table["methods"]:
        row: dict = {"method": method}
        for i, env in enumerate(ENVS):
            cell = table["cells"].get((method, env))
            if cell is not None:
                ci = cell["ci"]
                row[env] = {"mean": ci.mean, "ci95": ci.half_width, "n": ci.n, "values": cell["values"]}
            paper = PAPER.get(method, (None,) * 3)[i]
            row[f"paper {env}"] = paper
        rows.append(row)
    sweep = manifest.get("sweep", {})
    result = {
        "claim": "GeMS Table 2 at 500 steps per seed (the paper: 100,000): test return on the 500 test users, faithful mode, "
                 "mean ± 95% t-CI over 5 of the paper's seeds trained together per cell; GeMS pretrained on 2,000 logged sessions for 4 epochs",
        "commands": [f"rl4rec sweep {SWEEP}", "python benchmarks/slate_table2.py"],
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "python": platform.python_version(), "torch": torch.__version__, "threads_per_run": sweep.get("threads_per_run")},
        "experiment": args.experiment,
        "sweep_overrides": list(sweep.get("overrides", [])),
        "rows": rows,
        "notes": ["runs that are not finished are left out (a cell shows fewer seeds or is missing)",
                  "paper values: GeMS (WSDM 2023) Table 2; the issue gives none for SlateQ"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}: {len(rows)} methods")


if __name__ == "__main__":
    main()
