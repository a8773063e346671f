"""MkDocs hook: pages generated from the code and the results, so they cannot drift from either.

- ``reference/configuration.md``: every key of every command's config class (type, default,
  bounds, help), from :data:`rl4rec.registry.PIPELINES`.
- ``results/<page>.md``: the tables of the JSON files under ``benchmarks/results/`` (each with the
  command that wrote it), grouped by :data:`RESULT_PAGES`.

The pages are written into ``docs/`` before every build (and committed, so they read on GitHub
too); ``tests/test_docs.py`` fails when a committed page differs from what the code and the JSON
files give now.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: results page -> (title, intro, JSON files under benchmarks/results/, in order)
RESULT_PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "slate": ("Slate RL", "TopicRec simulator fidelity against the official code, and GeMS Table 2 at laptop budget.",
              ("slate_fidelity.json", "slate_table2_laptop.json", "slate_table2_rerun.json", "slate_table2_budget.json", "slate_mf_structure.json",
               "slate_gems_ceiling.json")),
    "sid": ("SID models", "Baselines and SFT of semantic-ID language models on Industrial_and_Scientific, and the SID builders.",
            ("genrec_baselines.json", "genrec_sft.json", "genrec_sft_cf_sids.json", "genrec_sids_industrial_compare.json")),
    "grpo": ("GRPO", "GRPO from SFT runs with recommendation rewards, TRL's GRPOTrainer beside rl4rec's, and the runtime sweeps on the synthetic catalogue.",
             ("genrec_grpo.json", "genrec_grpo_study.json", "genrec_grpo_study_round2.json", "genrec_grpo_final.json", "genrec_carry_over.json",
              "trl_side_by_side.json",
              "runtime_sweeps.json")),
    "latent": ("Latent reasoning", "LatentR3-style latent SFT and noise-GRPO on CDs_and_Vinyl.", ("genrec_latent.json",)),
    "free-text": ("Free text", "Free-text titles grounded by retrieval, SFT and GRPO.", ("genrec_grpo_text.json",)),
    "speed": ("Speed", "Benchmarks: each compares against a baseline measured in the same run (ratios), since the machine is noisy.",
              ("beam_search.json", "grpo_step.json", "latent_speed.json", "simulator.json", "slate_agents.json",
               "slate_agents_idle.json", "slate_versions.json", "slate_compiled.json")),
}


# --------------------------------------------------------------------------- configuration reference


def _bounds(meta: dict[str, Any]) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    return ", ".join(f"{signs[k]} {meta[k]}" for k in signs if meta.get(k) is not None)


def config_rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, bounds, help) of every field, sections flattened with dotted keys."""
    from rl4rec.config import describe

    described = {key: (tp, default, help_) for key, tp, default, help_ in describe(cls, prefix)}
    rows = []

    def walk(klass: type, pre: str) -> None:
        hints = _hints(klass)
        for f in dataclasses.fields(klass):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], pre + f.name + ".")
            else:
                tp, default, help_ = described[pre + f.name]
                rows.append((pre + f.name, tp, default, _bounds(dict(f.metadata)), help_))

    walk(cls, prefix)
    return rows


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _config_section(title: str, anchor: str, intro: str, cls: type, prefix: str = "") -> list[str]:
    md = ["", f"## `{title}` {{#{anchor}}}", "", f"{intro}config class `{cls.__module__}.{cls.__qualname__}`. "
          f"{(cls.__doc__ or '').strip().splitlines()[0]}", "", "| key | type | default | bounds | help |", "|---|---|---|---|---|"]
    return md + [f"| `{k}` | {_cell(t)} | `{_cell(d)}` | {_cell(b)} | {_cell(h)} |" for k, t, d, b, h in config_rows(cls, prefix)]


def configuration_page() -> str:
    from rl4rec.experiments.sweep import SweepConfig
    from rl4rec.genrec.latent.sft import LatentEvalConfig
    from rl4rec.registry import PIPELINES

    md = ["# Configuration reference", "",
          "Generated from the config classes at build time: every key of every command, with its type, default, "
          "bounds and help. Give keys as `key=value` (dotted for sections: `hp.gamma=0.9`), in a YAML file "
          "(`--config FILE`), or print them with `rl4rec config <pipeline>`.", ""]
    md += [f"- [`rl4rec {' '.join(p.command)}`](#{p.name.replace('.', '')}): {p.help}" for p in PIPELINES]
    md += ["- [`rl4rec sweep FILE`](#sweep): the keys of a sweep file",
           "- [`rl4rec genrec latent-eval RUN`](#latent-eval): its `eval.*` overrides"]
    for p in PIPELINES:
        md += _config_section(f"rl4rec {' '.join(p.command)}", p.name.replace(".", ""), f"Pipeline `{p.name}`, ", p.config_class())
    md += _config_section("rl4rec sweep FILE", "sweep", "A sweep file (YAML), overridable as `key=value` after it: ", SweepConfig)
    md += _config_section("rl4rec genrec latent-eval RUN", "latent-eval",
                          "`eval.*` overrides on top of the run's own evaluation settings: ", LatentEvalConfig, "eval.")
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------- results pages


def _fmt(v: Any, like: float | None = None) -> str:
    """A number as the tables show it; ``like``: format a spread with its mean's precision."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        size = abs(v if like is None else like)
        return f"{v:.4f}" if size < 10 else f"{v:.1f}" if size < 1e4 else f"{v:.0f}"
    return _cell(v)


def _value(v: Any) -> str | None:
    """A table cell for a scalar, a {mean, ci95}/{mean, sem} summary or a list of seeds; None otherwise."""
    if isinstance(v, dict) and "mean" in v:
        spread = v.get("ci95", v.get("sem"))
        sign = "±" if "ci95" in v else "± SEM"
        if isinstance(spread, (int, float)) and math.isfinite(spread):
            return f"{_fmt(float(v['mean']))} {sign} {_fmt(float(spread), like=float(v['mean']))}"
        return _fmt(float(v["mean"]))
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v) and len(v) <= 8:
        return ", ".join(_fmt(x) for x in v) or "–"
    if isinstance(v, (str, int, float, bool)) or v is None:
        return "–" if v is None else _fmt(v)
    return None


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of a list of flat-ish dicts: the columns every row can show."""
    columns: list[str] = []
    for row in rows:
        for k, v in row.items():
            if k not in columns and _value(v) is not None and not (isinstance(v, dict) and "values" not in v and "mean" not in v):
                columns.append(k)
    columns = [c for c in columns if any(_value(r.get(c)) not in (None, "–") for r in rows)]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_value(r.get(c)) or "–" for c in columns) + " |" for r in rows]
    return out


def _scalars(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        if k in ("claim", "command", "commands", "what", "machine", "notes", "rows", "raw", "runs", "tables", "figures"):
            continue
        text = _value(v)
        if text is not None:
            out.append((prefix + k, text))
        elif isinstance(v, dict):
            out += _scalars(v, f"{prefix}{k}.")
    return out


def result_section(name: str) -> list[str]:
    path = RESULTS / name
    md = ["", f"## `{name}`", ""]
    if not path.is_file():
        return md + ["Not measured yet: this file is not in `benchmarks/results/`."]
    data = json.loads(path.read_text())
    if isinstance(data, dict) and not any(k in data for k in ("rows", "claim", "command", "what", "commands")):
        data = {"rows": [{"variant": k, **v} for k, v in data.items() if isinstance(v, dict)]}  # {variant: result}
    text = data.get("claim") or data.get("what")
    if text:
        md += [_cell(text), ""]
    commands = data.get("commands") or ([data["command"]] if data.get("command") else [])
    if commands:
        md += ["Made by:", "", "```bash", *(commands if isinstance(commands, list) else [str(commands)]), "```", ""]
    if isinstance(data.get("machine"), (str, dict)):
        machine = data["machine"] if isinstance(data["machine"], str) else ", ".join(f"{k} {v}" for k, v in data["machine"].items())
        md += [f"Machine: {_cell(machine)}.", ""]
    rows = data.get("rows")
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        md += rows_table(rows)
    elif isinstance(data.get("runs"), dict):
        md += rows_table([{"run": k, **v} for k, v in data["runs"].items()])
    for title, table in (data.get("tables") or {}).items():  # further tables: {title: [row, ...]}
        if table:
            md += ["", f"**{_cell(title)}**", "", *rows_table(table)]
    for fig in data.get("figures") or []:  # {"file": path under docs/results/, "caption": ...}
        md += ["", f"![{_cell(fig['caption'])}]({fig['file']})", "", f"*{_cell(fig['caption'])}*"]
    scalars = _scalars(data)
    if scalars:
        md += ["", "| key | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in scalars)]
    notes = data.get("notes")
    if notes:
        md += ["", *(f"- {_cell(n)}" for n in (notes if isinstance(notes, list) else [notes]))]
    return md


def results_page(page: str) -> str:
    title, intro, files = RESULT_PAGES[page]
    md = [f"# Results: {title}", "", intro, "",
          "Generated at build time from the JSON files under `benchmarks/results/`, each written by the command shown with it. "
          "± is a 95% Student-t half-width over seeds unless marked SEM."]
    for name in files:
        md += result_section(name)
    return "\n".join(md) + "\n"


def generated_pages() -> dict[str, str]:
    """docs path -> Markdown of every generated page."""
    pages = {"reference/configuration.md": configuration_page()}
    pages.update({f"results/{page}.md": results_page(page) for page in RESULT_PAGES})
    return pages


# --------------------------------------------------------------------------- the MkDocs hook


def write_pages(docs_dir: Path = ROOT / "docs") -> list[Path]:
    """Write the generated pages that changed; returns them."""
    changed = []
    for rel, text in generated_pages().items():
        path = docs_dir / rel
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def on_pre_build(config):  # noqa: ARG001 (MkDocs hook signature)
    write_pages(Path(config["docs_dir"]))
