"""GeMS Table 2 at the budget of ``configs/slate/table2/sweep_budget*.yaml`` (10,000 steps per seed):
for every (method, environment, steps, alpha variant) the seeds, their test returns in the same
order, mean ± 95% t-CI, and each seed's validation curve (eval/return vs step), written to
``benchmarks/results/slate_table2_budget.json``; the learning curves (mean and CI band over seeds)
as ``docs/results/figures/slate_table2_budget_curves.svg``; and the paper's comparisons (SAC+GeMS
against SAC+TopK(MF) and REINFORCE+SoftMax, fixed against faithful alpha) with Welch's and paired
t-tests over seeds and the validation step from which the first method stays ahead.

Only finished runs count. Run folders are not committed, so the seeds already in the JSON file are
kept when their runs are not on this machine (a run is reproducible from its seed; a run present
here replaces its entry). The sweeps are resumable, so the file grows as cells finish.

    rl4rec sweep configs/slate/table2/sweep_budget.yaml
    rl4rec sweep configs/slate/table2/sweep_budget_fixed_alpha.yaml
    rl4rec sweep configs/slate/table2/sweep_budget_mix_divpen.yaml   # focused Mix and DivPen, 2,000 steps
    rl4rec sweep configs/slate/table2/sweep_budget_own_mf.yaml       # SAC+TopK(MF) on MF factors trained here
    python benchmarks/slate_table2_budget.py
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch

from _runs import sweep_args
from rl4rec.experiments.report import collect, curve_band
from rl4rec.metrics.stats import mean_ci, paired_ttest, welch_ttest
from rl4rec.tracking import read_metrics
from slate_table2 import PAPER, cpu_model

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "results" / "figures" / "slate_table2_budget_curves.svg"
#: experiment -> alpha variant
EXPERIMENTS = {"table2_budget": "faithful", "table2_budget_fixed_alpha": "fixed_alpha_init", "table2_budget_2k": "faithful",
               "table2_budget_own_mf": "faithful"}
ENV_INDEX = {"focused_topdown": 0, "focused_mix": 1, "focused_divpen": 2}
METHODS = ("STO", "Random", "REINFORCE+SoftMax", "SAC+TopK(ideal)", "SAC+TopK(MF)", "SAC+TopK(MF trained here)", "SAC+GeMS", "SlateQ", "SAC+WkNN")
#: (a, b): does a beat b, as the paper says SAC+GeMS does
PAIRS = (("SAC+GeMS", "SAC+TopK(MF)"), ("SAC+GeMS", "REINFORCE+SoftMax"), ("SAC+GeMS", "SAC+TopK(ideal)"),
         ("SAC+TopK(MF trained here)", "SAC+TopK(MF)"))  # the last: MF factors with topic structure vs the released ones


def previous_runs(out: Path) -> dict[tuple, dict[int, tuple]]:
    """(method, env, steps, alpha) -> {seed: (test return, validation curve, CPU, wall times)} of the committed file."""
    if not out.is_file():
        return {}
    data = json.loads(out.read_text())
    runs: dict[tuple, dict[int, tuple]] = {}
    for r in data["rows"]:
        n = len(r["seeds"])
        cpus = r.get("cpus") or [data["machine"]["cpu"]] * n
        walls = r.get("wall") or [None] * n
        runs[(r["method"], r["env"], r["steps"], r["alpha"])] = {
            s: (t, c, cpu, w) for s, t, c, cpu, w in zip(r["seeds"], r["test_returns"], r["val_curves"], cpus, walls, strict=True)}
    return runs


def wall_times(metrics: list[dict]) -> dict[str, float | None]:
    """What a real run's log says about its speed: the median wall seconds of a learning step
    (``perf/step_s``: episode, replay buffer and update), the run's last ``perf/steps_per_s``
    (validations, checkpoints and logging included, since the loop's last start: a resumed run counts
    from its resume) and the median seconds per GeMS pretraining epoch (None without GeMS)."""
    steps = [m for m in metrics if "perf/step_s" in m and any(k.startswith("losses/") for k in m)]
    epochs = [m["time"] for m in metrics if "train/gems_loss" in m]
    return {"step_s": statistics.median(m["perf/step_s"] for m in steps) if steps else None,
            "steps_per_s_overall": steps[-1]["perf/steps_per_s"] if steps else None,
            "gems_epoch_s": statistics.median(b - a for a, b in zip(epochs[:-1], epochs[1:], strict=True)) if len(epochs) > 1 else None}


def band(curves: list[list]) -> dict[str, list] | None:
    """Mean and 95% CI over seeds of the validation return at each step every seed reached."""
    by_seed = [dict((int(s), v) for s, v in c) for c in curves if c]
    if len(by_seed) < len(curves) or not by_seed:
        return None
    steps, means, half = curve_band(by_seed)
    return {"steps": steps, "val_mean": means, "val_ci95": half}


def ahead_from(a: dict | None, b: dict | None) -> int | None:
    """The first validation step from which ``a``'s mean curve stays above ``b``'s (None: never)."""
    if not a or not b:
        return None
    common = sorted(set(a["steps"]) & set(b["steps"]))
    ma, mb = dict(zip(a["steps"], a["val_mean"], strict=True)), dict(zip(b["steps"], b["val_mean"], strict=True))
    first = None
    for s in common:
        if ma[s] <= mb[s]:
            first = None
        elif first is None:
            first = s
    return first


def compare(row_a: dict, row_b: dict, name_a: str, name_b: str) -> dict:
    """Welch's test on the two cells and the paired test on their common seeds (same users)."""
    ta = dict(zip(row_a["seeds"], row_a["test_returns"], strict=True))
    tb = dict(zip(row_b["seeds"], row_b["test_returns"], strict=True))
    common = [s for s in row_a["seeds"] if s in tb]
    paired = paired_ttest([ta[s] for s in common], [tb[s] for s in common]) if len(common) > 1 else (None, None)
    return {"a": name_a, "b": name_b, "env": row_a["env"], "steps": row_a["steps"],
            "mean_a": row_a["mean"], "mean_b": row_b["mean"], "diff": row_a["mean"] - row_b["mean"],
            "welch_p": welch_ttest(row_a["test_returns"], row_b["test_returns"])[1] if min(len(ta), len(tb)) > 1 else None,
            "paired_seeds": len(common), "paired_diff": statistics.mean(ta[s] - tb[s] for s in common) if common else None,
            "paired_p": paired[1], "val_ahead_from_step": ahead_from(row_a.get("curve"), row_b.get("curve"))}


def plot(rows: list[dict], path: Path) -> bool:
    """Focused TopDown, one panel per alpha variant: each learning method's mean validation return with its CI band;
    STO and Random (no learning) as dashed lines at their test return. False when nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["env"] == "focused_topdown"]
    variants = [v for v in dict.fromkeys(EXPERIMENTS.values()) if any(r["alpha"] == v and r.get("curve") for r in rows)]
    if not variants:
        return False
    plt.rcParams["svg.hashsalt"] = "rl4rec"  # stable ids: the committed figure changes only with the data
    fig, axes = plt.subplots(1, len(variants), figsize=(6.5 * len(variants), 4.2), squeeze=False, sharey=True)
    colors = dict(zip(METHODS, plt.get_cmap("tab10").colors, strict=False))
    for ax, variant in zip(axes[0], variants, strict=True):
        for r in rows:
            if r["alpha"] == variant and r.get("curve"):
                c = r["curve"]
                mean, half = np.array(c["val_mean"]), np.array(c["val_ci95"])
                ax.plot(c["steps"], mean, color=colors[r["method"]], label=f"{r['method']} ({len(r['seeds'])} seeds)")
                ax.fill_between(c["steps"], mean - half, mean + half, color=colors[r["method"]], alpha=0.2)
            elif r["method"] in ("STO", "Random") and r["alpha"] == "faithful":
                ax.axhline(r["mean"], color=colors[r["method"]], linestyle="--", label=f"{r['method']} (test)")
        ax.set(title=f"focused TopDown, alpha {variant}", xlabel="training step", ylabel="validation return (200 users)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return True


def main() -> None:
    args = sweep_args(__doc__, "table2_budget", ROOT / "benchmarks" / "results" / "slate_table2_budget.json")
    out = Path(args.out)
    runs = previous_runs(out)
    overrides = json.loads(out.read_text()).get("sweep_overrides", {}) if out.is_file() else {}
    for experiment, alpha in EXPERIMENTS.items():
        exp_dir = Path(args.runs_dir) / experiment
        if not exp_dir.is_dir():
            continue
        records, manifest = collect(exp_dir)
        overrides[experiment] = list(manifest.get("sweep", {}).get("overrides", []))
        for r in records:
            if r.status == "finished" and "test/return" in r.results:
                key = (r.method, r.column, int(r.config.get("steps", 0)), alpha)
                wall = wall_times(read_metrics(exp_dir / r.name / "metrics.jsonl"))
                runs.setdefault(key, {})[r.seed] = (r.results["test/return"], r.curves.get("eval/return", []), cpu_model(), wall)
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (method, env, steps, alpha), by_seed in sorted(runs.items(), key=lambda kv: (kv[0][3], kv[0][1], order.get(kv[0][0], 99))):
        seeds = list(by_seed)
        tests, curves, cpus, walls = ([by_seed[s][i] for s in seeds] for i in range(4))
        ci = mean_ci(tests) if len(tests) > 1 else None
        paper = PAPER.get(method, (None,) * 3)[ENV_INDEX[env]] if env in ENV_INDEX else None
        rows.append({"method": method, "env": env, "steps": steps, "alpha": alpha, "seeds": seeds, "test_returns": tests,
                     "mean": ci.mean if ci else tests[0], "ci95": ci.half_width if ci else None,
                     "paper_100k_steps": paper, "cpus": cpus, "wall": walls, "val_curves": curves, "curve": band(curves)})
    cell = {(r["method"], r["env"], r["steps"], r["alpha"]): r for r in rows}
    comparisons = []
    for (method, env, steps, alpha), row in cell.items():
        for a, b in PAIRS:
            if method == a and (b, env, steps, alpha) in cell:
                comparisons.append({"alpha": alpha, **compare(row, cell[(b, env, steps, alpha)], a, b)})
        if alpha == "fixed_alpha_init" and (method, env, steps, "faithful") in cell:
            comparisons.append({"alpha": "fixed vs faithful", **compare(row, cell[(method, env, steps, "faithful")],
                                                                           f"{method} fixed alpha", f"{method} faithful")})
    drew = plot(rows, FIGURE)
    result = {
        "claim": "GeMS Table 2 at a real budget (the paper: 100,000 steps): focused TopDown at 10,000 steps per seed with the "
                 "paper's alpha init (faithful) and hp.fix_alpha_init=true, focused Mix and DivPen at 2,000 steps; one run per "
                 "seed, test return on the 500 test users, faithful simulator",
        "commands": ["rl4rec sweep configs/slate/table2/sweep_budget.yaml", "rl4rec sweep configs/slate/table2/sweep_budget_fixed_alpha.yaml",
                     "rl4rec sweep configs/slate/table2/sweep_budget_mix_divpen.yaml",
                     "rl4rec sweep configs/slate/table2/sweep_budget_own_mf.yaml",
                     "python benchmarks/slate_table2_budget.py"],
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "torch": torch.__version__},
        "sweep_overrides": overrides,
        "rows": rows,
        "tables": {"Comparisons over seeds (test return; Welch's t-test, and the paired t-test on common seeds, which see "
                   "the same test users; val_ahead_from_step: the validation step from which a's mean curve stays above b's)":
                   comparisons},
        "figures": [{"file": "figures/slate_table2_budget_curves.svg",
                     "caption": "Validation return vs training step on focused TopDown, mean over seeds with the 95% t-CI band"}]
                   if drew else [],
        "notes": ["only finished runs are listed; a cell with fewer than 5 seeds is still running in the resumable sweep",
                  "paper_100k_steps: GeMS (WSDM 2023) Table 2 at 100,000 steps, not the budget of these rows",
                  "cpus: the CPU each seed ran on; the sweep spans sessions on different machines, and a learning agent's run "
                  "differs between CPU models through float rounding (slate_table2_rerun.json): a seed reproduces on its CPU model",
                  "curve: the validation return (200 users, deterministic policy) at the steps every seed of the cell reached",
                  "wall: per seed, from the run's own metrics.jsonl: step_s, the median seconds of a learning step "
                  "(episode with compiled turns, replay buffer, eager update); steps_per_s_overall, validations and "
                  "checkpoints included (since the run's last resume); gems_epoch_s, the median seconds per GeMS "
                  "pretraining epoch (10,000 sessions); one thread each, with another run on the 2-core machine"],
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}: {len(rows)} cells, {sum(len(r['seeds']) for r in rows)} finished runs" + (f"; {FIGURE}" if drew else ""))
    for r in rows:
        ci = f" ± {r['ci95']:.1f}" if r["ci95"] is not None else ""
        print(f"{r['method']:<20} {r['env']} {r['steps']} {r['alpha']}: {r['mean']:.1f}{ci} over {len(r['seeds'])} seeds")
    for c in comparisons:
        print(f"{c['a']} vs {c['b']} ({c['alpha']}): {c['diff']:+.1f}, Welch p={c['welch_p']}, paired over {c['paired_seeds']} seeds "
              f"{c['paired_diff']:+.1f}, p={c['paired_p']}")


if __name__ == "__main__":
    main()
