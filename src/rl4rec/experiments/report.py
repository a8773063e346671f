"""``rl4rec report EXPERIMENT``: tables with mean ± 95% t-CI over seeds, Welch tests, curves, parameters.

Outputs ``REPORT.md`` and a self-contained ``report.html`` (plots embedded) in
``<runs_dir>/<experiment>/report/``, plus the learning-curve PNGs. Runs are grouped by the sweep
manifest (method x grid point) when there is one, otherwise by run name without the seed.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rl4rec.metrics.stats import mean_ci, paired_ttest, welch_ttest
from rl4rec.runs import list_runs
from rl4rec.tracking import read_metrics

log = logging.getLogger(__name__)

RESULT_FILES = ("test_results.json", "results.json")
LOWER_IS_BETTER = re.compile(r"(loss|mse|error|invalid|duplicate|perplexity|time|seconds)", re.I)
SIGNIFICANCE = 0.05


@dataclass
class RunRecord:
    name: str
    method: str
    column: str
    seed: int
    status: str
    results: dict[str, float]
    config: dict[str, Any]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


_SEED_CURVE = re.compile(r"^(?P<key>.+)_seed(?P<seed>\d+)$")
_PER_SEED = re.compile(r"^(?P<key>.+)_per_seed\.(?P<seed>\d+)$")


def _per_seed(results: dict[str, float]) -> dict[int, dict[str, float]]:
    """``{"test/return_per_seed.7": x}`` -> ``{7: {"test/return": x}}`` (batched-seed runs)."""
    out: dict[int, dict[str, float]] = {}
    for key, value in results.items():
        m = _PER_SEED.match(key)
        if m:
            out.setdefault(int(m["seed"]), {})[m["key"]] = value
    return out


def collect(exp_dir: Path) -> tuple[list[RunRecord], dict[str, Any]]:
    """Every run of an experiment with its group (method, column), final results and eval curves."""
    manifest_path = exp_dir / "sweep.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    columns = tuple(manifest.get("sweep", {}).get("report_columns", ()))
    by_name = {r["name"]: r for r in manifest.get("runs", [])}
    records = []
    for run in list_runs(exp_dir.parent, exp_dir.name):
        run_dir: Path = run["dir"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
        entry = by_name.get(run["name"])
        if manifest and entry is None:
            continue  # a run of this experiment that is not part of the sweep
        if entry:
            rows = {k: v for k, v in entry["point"].items() if k not in columns}
            method = entry["method"] + "".join(f" {k}={v}" for k, v in rows.items())
            column = " ".join(f"{entry['point'][k]}" for k in columns) or "all"
            seed = int(entry["seed"])
        else:
            method = re.sub(r"_seed\d+$", "", run["name"])
            column, seed = "all", int(config.get("seed", 0))
        result_file = next((run_dir / f for f in RESULT_FILES if (run_dir / f).exists()), None)
        flat = _flatten(json.loads(result_file.read_text())) if result_file else {}
        results = {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
        seed_curves: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
        for rec in read_metrics(run_dir / "metrics.jsonl"):
            for key, value in rec.items():
                if key.startswith(("eval/", "val/")) and isinstance(value, (int, float)):
                    m = _SEED_CURVE.match(key)
                    curve = seed_curves[int(m["seed"])][m["key"]] if m else curves[key]
                    curve.append((int(rec["step"]), float(value)))
        per_seed = _per_seed(results)
        if len(per_seed) > 1:  # one run that trained several seeds at once: one record per seed
            for sd, res in per_seed.items():
                records.append(RunRecord(f"{run['name']}#{sd}", method, column, sd, run["status"], res, _flatten(config), dict(seed_curves.get(sd, {}))))
            continue
        records.append(RunRecord(run["name"], method, column, seed, run["status"], results, _flatten(config), dict(curves)))
    order = {r["name"]: i for i, r in enumerate(manifest.get("runs", []))}
    records.sort(key=lambda r: order.get(r.name.split("#")[0], len(order)))  # the sweep file's order of methods
    return records, manifest


def _cell_order(records: list[RunRecord]) -> tuple[list[str], list[str]]:
    return list(dict.fromkeys(r.method for r in records)), list(dict.fromkeys(r.column for r in records))


def metric_table(records: list[RunRecord], metric: str) -> dict[str, Any]:
    """Per (method, column): values over seeds, mean ± CI, best per column, Welch p vs the best."""
    methods, columns = _cell_order(records)
    lower = bool(LOWER_IS_BETTER.search(metric))
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)  # parallel to values
    nonfinite: dict[tuple[str, str], int] = defaultdict(int)  # NaN/inf seeds: left out of the mean, and said so
    for r in records:
        if metric in r.results:
            if math.isfinite(r.results[metric]):
                values[(r.method, r.column)].append(r.results[metric])
                seeds[(r.method, r.column)].append(r.seed)
            else:
                nonfinite[(r.method, r.column)] += 1
    for (m, col), n in nonfinite.items():
        log.warning("%s: %d run(s) of %s%s have a non-finite value; they are left out of its mean, CI and tests",
                    metric, n, m, "" if col == "all" else f" @ {col}")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for col in columns:
        present = [m for m in methods if values.get((m, col))]
        if not present:
            continue
        means = {m: sum(values[(m, col)]) / len(values[(m, col)]) for m in present}
        best = (min if lower else max)(present, key=lambda m: means[m])
        pvals = {m: welch_ttest(values[(best, col)], values[(m, col)])[1] for m in present if m != best}
        best_significant = bool(pvals) and all(p < SIGNIFICANCE for p in pvals.values())
        for m in present:
            cells[(m, col)] = {
                "ci": mean_ci(values[(m, col)]),
                "values": values[(m, col)],
                "seeds": seeds[(m, col)],
                "best": m == best,
                "dagger": m == best and best_significant,
                "p_vs_best": pvals.get(m),
            }
    return {"metric": metric, "methods": methods, "columns": columns, "cells": cells, "lower_is_better": lower, "nonfinite": dict(nonfinite)}


def baseline_comparison(records: list[RunRecord], baseline: list[RunRecord], metric: str) -> list[dict[str, Any]]:
    """Per (method, column) present in both experiments: both mean ± CI, Welch's p, and the paired
    p over seeds when both cells ran the same seeds (same users too, so the pairing is tight).

    For an experiment that repeats another with one switch changed (e.g. a fix), cell by cell.
    """
    ours, theirs = metric_table(records, metric)["cells"], metric_table(baseline, metric)["cells"]
    rows = []
    for key, cell in ours.items():
        if key not in theirs:
            continue
        a, b = (dict(zip(c["seeds"], c["values"], strict=True)) for c in (cell, theirs[key]))
        same = sorted(a) == sorted(b) and len(a) == len(cell["values"]) and len(b) == len(theirs[key]["values"])
        rows.append({"method": key[0], "column": key[1], "ci": cell["ci"], "baseline_ci": theirs[key]["ci"],
                     "p": welch_ttest(cell["values"], theirs[key]["values"])[1],
                     "paired_p": paired_ttest([a[k] for k in sorted(a)], [b[k] for k in sorted(a)])[1] if same else None})
    return rows


def parameters(
    records: list[RunRecord], columns: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Config keys with one value in every run, and per method the keys that vary among the runs.

    A key varies when the runs that set it hold at least two values; a key only some runs have
    (another pipeline's) with one value, or one unset everywhere, is in neither (``config.yaml``
    has it). ``columns`` (the report's column keys, e.g. env) are left out: the headers show them.
    """
    ignore = ("seed", "run_name", "resume", "progress", "experiment", "runs_dir", "description", "tags", *columns)
    keys = sorted({k for r in records for k in r.config} - set(ignore))
    shared, differing = {}, []
    for k in keys:
        values = [r.config.get(k) for r in records]
        distinct = {json.dumps(v, sort_keys=True) for v in values if v is not None}
        if len(distinct) > 1:
            differing.append(k)
        elif len(distinct) == 1 and None not in values:
            shared[k] = values[0]
    per_method: dict[str, dict[str, Any]] = {}
    for r in records:
        row = per_method.setdefault(r.method, {})
        for k in differing:
            v = r.config.get(k)
            if k in row and row[k] != v:
                row[k] = "varies"
            else:
                row.setdefault(k, v)
    return shared, per_method


def curve_band(series: list[dict[int, float]]) -> tuple[list[int], list[float], list[float]]:
    """Steps every seed reached, the mean over seeds there and its 95% t-CI half-width (0 for one seed)."""
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    stats = [mean_ci([s[t] for s in series]) for t in steps]
    return steps, [st.mean for st in stats], [st.half_width if math.isfinite(st.half_width) else 0.0 for st in stats]


def plot_curves(records: list[RunRecord], out_dir: Path, prefix: str = "") -> list[Path]:
    """One PNG per (curve metric, column): mean over seeds with a 95% t-CI band, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods, columns = _cell_order(records)
    keys = sorted({k for r in records for k in r.curves})
    paths = []
    for key in keys:
        for col in columns:
            fig, ax = plt.subplots(figsize=(6, 3.6))
            for m in methods:
                series = [dict(r.curves[key]) for r in records if r.method == m and r.column == col and key in r.curves]
                if not series:
                    continue
                steps, mean, half = curve_band(series)
                if not steps:
                    continue
                mean, half = np.array(mean), np.array(half)
                ax.plot(steps, mean, label=f"{m} (n={len(series)})")
                ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
            if not ax.lines:
                plt.close(fig)
                continue
            ax.set_xlabel("step")
            ax.set_ylabel(key)
            ax.set_title(f"{key} — {col}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / f"{prefix}curve_{re.sub(r'[^A-Za-z0-9]+', '_', key)}_{re.sub(r'[^A-Za-z0-9]+', '_', col)}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths


def _rows_with_data(table: dict[str, Any]) -> list[str]:
    """Methods with at least one value of this metric (others would be a row of dashes)."""
    has = set(table["cells"]) | set(table.get("nonfinite", {}))
    return [m for m in table["methods"] if any((m, c) in has for c in table["columns"])]


def _cell_text(table: dict[str, Any], method: str, column: str) -> str:
    cell, bad = table["cells"].get((method, column)), table.get("nonfinite", {}).get((method, column), 0)
    note = f" ⚠ {bad} non-finite left out" if bad else ""
    if cell is None:
        return "—" + note
    text = f"{cell['ci'].format()} (n={cell['ci'].n})" + (" †" if cell["dagger"] else "")
    return (f"**{text}**" if cell["best"] else text) + note


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in cells)]


def _metric_tables(tables: list[dict[str, Any]]) -> list[str]:
    """One table of methods x metrics when there is one column, else one table per metric."""
    if all(t["columns"] == ["all"] for t in tables):
        methods = [m for m in tables[0]["methods"] if any(m in _rows_with_data(t) for t in tables)]
        header = ["method", *(t["metric"] + (" ↓" if t["lower_is_better"] else "") for t in tables)]
        return ["", *_table(header, [[m, *(_cell_text(t, m, "all") for t in tables)] for m in methods])]
    md = []
    for t in tables:
        md += ["", f"### {t['metric']}" + (" (lower is better)" if t["lower_is_better"] else ""), ""]
        md += _table(["method", *t["columns"]], [[m, *(_cell_text(t, m, c) for c in t["columns"])] for m in _rows_with_data(t)])
    return md


def _p_values(tables: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in tables:
        pv = [(m, c, cell["p_vs_best"]) for (m, c), cell in t["cells"].items() if cell["p_vs_best"] is not None and math.isfinite(cell["p_vs_best"])]
        if pv:
            where = (lambda m, c: m) if t["columns"] == ["all"] else (lambda m, c: f"{m} @ {c}")
            out.append(f"{t['metric']}, Welch p vs the best method: " + "; ".join(f"{where(m, c)}: {p:.3g}" for m, c, p in pv) + ".")
    return ["", *out] if out else []


def _baseline_section(records, baseline_records, baseline: str, experiment: str, metrics: list[str]) -> list[str]:
    md = []
    for metric in metrics:
        rows = baseline_comparison(records, baseline_records, metric)
        md += ["", f"### {metric}: against {baseline}", ""]
        if not rows:
            md.append(f"No (method, column) cell is in both experiments with {metric}.")
            continue
        md += _table(["method", "column", experiment, baseline, "Welch p", "paired p (same seeds)"],
                     [[r["method"], r["column"], f"{r['ci'].format()} (n={r['ci'].n})", f"{r['baseline_ci'].format()} (n={r['baseline_ci'].n})",
                       f"{r['p']:.3g}", "—" if r["paired_p"] is None else format(r["paired_p"], ".3g")] for r in rows])
    return md


def _section(runs_dir: Path, experiment: str, metrics: list[str] | None, baseline: str | None, out_dir: Path, prefix: str) -> list[str]:
    """The Markdown of one experiment (one task): results, tests, parameters, curves."""
    exp_dir = Path(runs_dir) / experiment
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"no experiment directory {exp_dir}")
    records, manifest = collect(exp_dir)
    if not records:
        raise FileNotFoundError(f"no runs in {exp_dir}")
    sweep = manifest.get("sweep", {})
    wanted = metrics or list(sweep.get("report_metrics", ())) or sorted({k for r in records for k in r.results})
    tables = [metric_table(records, m) for m in wanted]
    runs = {r.name.split("#")[0]: r for r in records}.values()  # a batched-seed run counts once
    status = Counter(r.status for r in runs)
    md = [f"## {experiment}", ""]
    if sweep.get("description"):
        md += [sweep["description"].strip(), ""]
    md.append("Runs: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + ".")
    md += _metric_tables(tables) + _p_values(tables)
    if baseline is not None:
        base_records, _ = collect(Path(runs_dir) / baseline)
        if not base_records:
            raise FileNotFoundError(f"no runs in baseline experiment {Path(runs_dir) / baseline}")
        md += _baseline_section(records, base_records, baseline, experiment, wanted)
    shared, per_method = parameters(records, tuple(sweep.get("report_columns", ())))
    diff_keys = sorted({k for row in per_method.values() for k in row})
    if diff_keys:  # keys down, methods across: a few methods fit a laptop screen however many keys vary
        md += ["", "### Parameters that differ between methods", ""]
        md += _table(["key", *per_method], [[k, *("" if row.get(k) is None else row[k] for row in per_method.values())] for k in diff_keys])
    if shared:  # folded: long, and the same for every method
        md += ["", "### Parameters shared by all runs", "", f'<details markdown="1"><summary>{len(shared)} keys</summary>', ""]
        md += _table(["key", "value"], [[k, v] for k, v in shared.items()]) + ["", "</details>"]
    pngs = plot_curves(records, out_dir, prefix)
    if pngs:
        md += ["", "### Learning curves", ""] + [f"![{p.stem}]({p.name})" for p in pngs]
    return md


def build_report(
    runs_dir: Path, experiments: str | list[str], metrics: list[str] | None = None, baseline: str | None = None,
    out_dir: Path | None = None, title: str | None = None,
) -> tuple[Path, Path]:
    """Write REPORT.md and report.html: one section per experiment (one task each). With
    ``baseline`` (another experiment in ``runs_dir``) each cell is also tested against the same
    (method, column) cell of the baseline. One experiment reports into ``<experiment>/report``."""
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    out_dir = Path(out_dir or Path(runs_dir) / names[0] / "report")
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {title or 'Report: ' + names[0]}", "",
          "Cells: mean ± 95% Student-t half-width over seeds (n). **Bold**: the best method of the column; "
          f"†: the best is better than every other method by Welch's t-test (p < {SIGNIFICANCE}); ↓: lower is better."]
    for name in names:
        md += ["", *_section(Path(runs_dir), name, metrics, baseline, out_dir, f"{name}_" if len(names) > 1 else "")]
    md_path = out_dir / "REPORT.md"
    md_path.write_text("\n".join(md) + "\n")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(md_path.read_text(), out_dir, title or names[0]))
    return md_path, html_path


def render_html(markdown_text: str, image_dir: Path, title: str) -> str:
    """The report's Markdown rendered by the ``markdown`` library, plots embedded as data URIs."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "md_in_html"], output_format="html")

    def embed(m: re.Match) -> str:
        path = image_dir / html.unescape(m["src"])
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"' if path.is_file() else m[0]

    body = re.sub(r'src="(?P<src>[^"]+\.png)"', embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:1.5em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;"
             "text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f3f3f3}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n{body}\n</body></html>\n")
