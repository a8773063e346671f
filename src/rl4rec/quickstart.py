"""``rl4rec quickstart``: a few-minute tour of every pipeline, ending in one report.

The tour is five ordinary sweep files shipped with the package (``rl4rec/sweeps/quickstart_*.yaml``,
one per task: foundation, slate RL, semantic IDs, free text, latent reasoning), run one after the
other by :func:`rl4rec.experiments.sweep.run_sweep` on data generated here (so it also works where
``../shared/data`` does not exist), then reported by :func:`rl4rec.experiments.report.build_report`
with one section per task. Running it again skips the runs that finished.
"""

from __future__ import annotations

import argparse
import logging
import time
from importlib import resources
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

SECTIONS = ("smoke", "slate", "sid", "text", "latent")


def sweep_of(section: str, runs_dir: Path, data: Path, catalogue: Path):
    """The quickstart sweep of ``section`` with its data paths filled in (``$DATA``, ``$CATALOGUE``)."""
    from rl4rec.config import from_dict
    from rl4rec.experiments.sweep import SweepConfig

    text = (resources.files("rl4rec") / "sweeps" / f"quickstart_{section}.yaml").read_text()
    spec = yaml.safe_load(text.replace("$DATA", str(data)).replace("$CATALOGUE", str(catalogue)))
    return from_dict(SweepConfig, {**spec, "runs_dir": str(runs_dir)})


def prepare_data(runs_dir: Path) -> tuple[Path, Path]:
    """The synthetic genrec category and the slate catalogue every section reads."""
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset
    from rl4rec.slate.tools import GenerateEmbeddingsConfig, generate_embeddings

    root = runs_dir / "quickstart"
    catalogue = root / "slate_catalogue.npy"
    if not catalogue.exists():  # the paper's recipe: 1000 items, 10 topics of 2 dimensions
        generate_embeddings(GenerateEmbeddingsConfig(out=str(catalogue), seed=7))
    return write_synthetic_dataset(root / "data"), catalogue


def run_quickstart(runs_dir: Path, only: list[str] | None = None) -> Path:
    from rl4rec.experiments.report import build_report
    from rl4rec.experiments.sweep import run_sweep

    unknown = [s for s in only or () if s not in SECTIONS]
    if unknown:
        raise ValueError(f"--only: unknown section {unknown[0]!r} (sections: {', '.join(SECTIONS)})")
    data, catalogue = prepare_data(runs_dir)
    experiments, timings = [], {}
    for section in SECTIONS:
        if only and section not in only:
            continue
        sweep = sweep_of(section, runs_dir, data, catalogue)
        log.info("quickstart section %s: %s", section, sweep.experiment)
        t0 = time.perf_counter()
        failed = {n: o for n, o in run_sweep(sweep).items() if o.startswith("failed")}
        if failed:
            raise RuntimeError(f"quickstart section {section}: " + "; ".join(f"{n}: {o}" for n, o in failed.items()))
        timings[section] = time.perf_counter() - t0
        experiments.append(sweep.experiment)
    md, html = build_report(runs_dir, experiments, out_dir=runs_dir / "quickstart" / "report", title="rl4rec quickstart")
    print(headline(md.read_text()))
    print("wall time: " + ", ".join(f"{s} {t:.0f}s" for s, t in timings.items()))
    print(f"full report (parameters, tests, curves): {md} and {html}")
    return md


def headline(report_md: str) -> str:
    """A report's titles, descriptions and result tables, without its parameter and curve parts."""
    keep, out = True, []
    for line in report_md.splitlines():
        if line.startswith("## ") or line.startswith("### "):
            keep = not line.startswith(("### Parameters", "### Learning curves"))
        if keep:
            out.append(line)
    return "\n".join(out)


def _cmd(args: argparse.Namespace) -> int:
    run_quickstart(Path(args.runs_dir), args.only)
    return 0


def register(sub: argparse._SubParsersAction, groups: dict | None = None) -> None:  # noqa: ARG001 (top-level commands)
    p = sub.add_parser("quickstart", help="a few-minute end-to-end tour on generated data, ending in a report")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--only", nargs="*", default=None, help=f"run only these sections ({', '.join(SECTIONS)})")
    p.set_defaults(func=_cmd)
