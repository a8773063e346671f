"""The quickstart end to end (two of its sections): packaged sweeps, init_from chaining, one report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rl4rec.quickstart import SECTIONS, sweep_of


def test_every_quickstart_sweep_expands_with_short_names_and_labels(tmp_path):
    from rl4rec.experiments.sweep import expand

    for section in SECTIONS:
        sweep = sweep_of(section, tmp_path, tmp_path / "data" / "Synthetic", tmp_path / "cat.npy")
        members = expand(sweep)
        assert members and all(len(m.name) <= 80 and len(m.method) <= 40 for m in members), section
        for m in members:  # a method that starts from another runs after it, from its run folder
            if m.after:
                assert m.config["init_from"] == str(tmp_path / sweep.experiment / m.after)


def test_quickstart_smoke_and_text_sections_end_in_one_rendered_report(tmp_path, capsys):
    from rl4rec.quickstart import run_quickstart

    md = run_quickstart(tmp_path, only=["smoke", "text"])
    out = capsys.readouterr().out
    assert "## quickstart-smoke" in out and "## quickstart-text" in out and "Parameters shared" not in out
    text = md.read_text()
    sections = re.findall(r"^## (\S+)", text, flags=re.M)
    assert sections == ["quickstart-smoke", "quickstart-text"]
    labels = re.findall(r"^\| ([^|]+) \| [\d.*]", text, flags=re.M)
    assert {"MLP regression", "SFT (titles)", "GRPO (retrieval NDCG)"} <= {label.strip() for label in labels}
    assert max(len(label) for label in labels) <= 40
    sweep = json.loads((tmp_path / "quickstart-text" / "sweep.json").read_text())
    sft, grpo = (r["name"] for r in sweep["runs"])
    init = json.loads((tmp_path / "quickstart-text" / grpo / "init_run.json").read_text())
    assert Path(init["run_dir"]).name == sft  # GRPO started from the section's SFT run
    html = (md.parent / "report.html").read_text()
    assert "<table>" in html and "<strong>" in html and "**" not in html and "data:image/png;base64," in html
    assert "<details>" in html or "<details" in html
