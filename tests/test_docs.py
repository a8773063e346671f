"""The documentation: generated pages are current, the reference is complete, the README's numbers
are on the results pages, and the site builds with --strict."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_pages_are_current():
    for rel, text in _hooks().generated_pages().items():
        path = ROOT / "docs" / rel
        assert path.is_file() and path.read_text() == text, f"docs/{rel} is stale: run make docs (or python docs/hooks.py)"


def test_configuration_reference_lists_every_key_of_every_command():
    from rl4rec.config import describe
    from rl4rec.registry import PIPELINES

    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    for p in PIPELINES:
        section = page.split(f"## `rl4rec {' '.join(p.command)}`", 1)[1].split("\n## ", 1)[0]
        keys = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
        assert keys == [row[0] for row in describe(p.config_class())], p.name
        assert "lr" not in keys or "≥" in section or ">" in section  # bounds are shown


def test_readme_is_short_and_its_numbers_are_on_the_results_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(readme) <= 10_000
    pages = " ".join((ROOT / "docs" / "results" / f"{page}.md").read_text() for page in _hooks().RESULT_PAGES)
    results = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    numbers = re.findall(r"(?<![\w.@])\d+\.\d+(?![\w.])", results)
    assert len(numbers) > 20
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", pages)]
    assert not missing, f"README numbers not on any results page: {missing}"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="install rl4rec[docs]")
    pytest.importorskip("mkdocstrings")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WARNING" not in out.stderr, out.stderr[-3000:]
    html = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "slate.generate_logs" in html or "generate-logs" in html


def test_results_sections_show_extra_tables_and_figures_that_exist(tmp_path):
    hooks = _hooks()
    (tmp_path / "x.json").write_text('{"claim": "c", "rows": [{"m": "A", "v": 1.5}], '
                                     '"tables": {"Tests": [{"a": "A", "b": "B", "p": 0.0312}]}, '
                                     '"figures": [{"file": "figures/x.svg", "caption": "curves"}]}')
    hooks.RESULTS = tmp_path
    md = "\n".join(hooks.result_section("x.json"))
    assert "**Tests**" in md and "| A | B | 0.0312 |" in md and "![curves](figures/x.svg)" in md
    for page in _hooks().RESULT_PAGES.values():  # every figure a committed result names is committed
        for name in page[2]:
            path = ROOT / "benchmarks" / "results" / name
            figures = json.loads(path.read_text()).get("figures", []) if path.is_file() else []
            for fig in figures if isinstance(figures, list) else []:
                assert (ROOT / "docs" / "results" / fig["file"]).is_file(), fig["file"]
