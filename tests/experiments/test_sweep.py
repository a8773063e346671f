"""Sweeps: 2 methods x 2 grid points x 2 seeds on local workers and on Ray, resume after a kill."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rl4rec.config import ConfigError
from rl4rec.experiments.report import build_report
from rl4rec.experiments.sweep import expand, load_sweep, run_sweep
from rl4rec.runs import load_checkpoint, read_status


def _sweep_file(tmp_path: Path, backend: str = "local", **extra) -> Path:
    spec = {
        "experiment": "toy",
        "task": "smoke",
        "runs_dir": str(tmp_path / "runs"),
        "overrides": ["steps=40", "eval_every=10", "save_every=10", "tracking.backends=[]"],
        "methods": {"adam_fast": ["lr=0.02"], "adam_slow": ["lr=0.002"]},
        "grid": {"hidden": [8, 16]},
        "seeds": [1, 2],
        "backend": backend,
        "workers": 2,
        "report_columns": ["hidden"],
        "report_metrics": ["eval/mse"],
        **extra,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _table(runs: Path) -> dict:
    """Results by sweep identity (method, grid point, seed), as names depend on every key."""
    manifest = json.loads((runs / "toy" / "sweep.json").read_text())
    out = {}
    for entry in manifest["runs"]:
        path = runs / "toy" / entry["name"] / "test_results.json"
        if path.exists():
            result = json.loads(path.read_text())
            key = f"{entry['method']} {json.dumps(entry['point'])} {entry['seed']}"
            out[key] = {k: v for k, v in result.items() if k not in ("train_s", "wall_s", "run_dir", "devices")}
    return out


def test_expand_names_and_validation(tmp_path):
    sweep, base = load_sweep(_sweep_file(tmp_path))
    members = expand(sweep, base)
    assert len(members) == 8 and len({m.name for m in members}) == 8
    # three differing keys by name, the other two as a hash (sha1 of their tokens)
    digest = hashlib.sha1(b"eval-every10_save-every10").hexdigest()[:6]
    assert members[0].name == f"mlp_steps40_hidden8_lr0.02_{digest}_seed1"
    with pytest.raises(ConfigError, match="report_columns"):
        load_sweep(_sweep_file(tmp_path, report_columns=["env"]))
    with pytest.raises(ConfigError, match=r"adam_slow.*unknown config key 'lrr'"):
        expand(load_sweep(_sweep_file(tmp_path, methods={"a": ["lr=0.1"], "adam_slow": ["lrr=0.1"]}))[0], base)


def test_local_sweep_and_report(tmp_path):
    sweep, base = load_sweep(_sweep_file(tmp_path))
    outcome = run_sweep(sweep, base)
    assert sorted(outcome.values()) == ["finished"] * 8
    again = run_sweep(sweep, base)  # everything is done: nothing runs twice
    assert set(again.values()) == {"skipped (finished)"}
    md, html = build_report(tmp_path / "runs", "toy")
    text = md.read_text()
    # every cell is the mean and 95% t half-width of that method's seeds (recomputed from the runs),
    # the best (lowest) mean is bold, and the differing key is shown with each method's value
    from rl4rec.metrics.stats import mean_ci

    manifest = json.loads((tmp_path / "runs" / "toy" / "sweep.json").read_text())
    values: dict[tuple[str, int], list[float]] = {}
    for e in manifest["runs"]:
        res = json.loads((tmp_path / "runs" / "toy" / e["name"] / "test_results.json").read_text())
        values.setdefault((e["method"], e["point"]["hidden"]), []).append(res["eval/mse"])
    lines = text.splitlines()
    assert "| method | 8 | 16 |" in lines
    for method in ("adam_fast", "adam_slow"):
        cells = next(x for x in lines if x.startswith(f"| {method} |")).strip("|").split("|")[1:]
        for hidden, cell in zip((8, 16), cells, strict=True):
            ci = mean_ci(values[(method, hidden)])
            best = min(statistics.mean(values[(m, hidden)]) for m in ("adam_fast", "adam_slow")) == ci.mean
            assert cell.strip().startswith(("**" if best else "") + f"{ci.mean:.4g} ± {ci.half_width:.3g} (n=2)"), (cell, ci)
    assert "| lr | 0.02 | 0.002 |" in lines
    assert "curve_eval_mse_8.png" in text and (md.parent / "curve_eval_mse_8.png").exists()
    assert "data:image/png;base64," in html.read_text()


def test_ray_sweep_matches_local(tmp_path):
    pytest.importorskip("ray", reason="install rl4rec[ray]")
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    local_dir.mkdir()
    ray_dir.mkdir()
    sweep, base = load_sweep(_sweep_file(local_dir))
    run_sweep(sweep, base)
    sweep_r, base_r = load_sweep(_sweep_file(ray_dir, backend="ray"))
    outcome = run_sweep(sweep_r, base_r)
    assert sorted(outcome.values()) == ["finished"] * 8
    assert _table(ray_dir / "runs") == _table(local_dir / "runs")  # same seeds -> same numbers
    md, _ = build_report(ray_dir / "runs", "toy")
    assert "adam_slow" in md.read_text()


def test_kill_a_worker_then_rerun_completes_only_the_missing(tmp_path):
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    ref_dir.mkdir()
    dir_.mkdir()
    sweep, base = load_sweep(_sweep_file(ref_dir))
    run_sweep(sweep, base)
    reference = _table(ref_dir / "runs")

    path = _sweep_file(dir_, max_retries=0, overrides=["steps=40", "eval_every=10", "save_every=10", "tracking.backends=[]", "step_sleep=0.03"])
    # step_sleep changes the run names; the reference must use the same names, so compare by values
    driver = subprocess.Popen([sys.executable, "-m", "rl4rec.cli", "sweep", str(path), "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    runs = dir_ / "runs" / "toy"
    victim, deadline = None, time.time() + 90
    while victim is None and time.time() < deadline:
        for run_dir in runs.glob("mlp_*") if runs.exists() else []:
            last = run_dir / "checkpoints" / "last.pt"
            if last.exists() and load_checkpoint(last)["step"] >= 10 and read_status(run_dir)["status"] == "running":
                victim = run_dir
                break
        time.sleep(0.05)
    assert victim is not None, "no run reached step 10"
    os.kill(int(read_status(victim)["pid"]), signal.SIGKILL)
    out, _ = driver.communicate(timeout=180)
    assert driver.returncode == 1, out.decode()  # one failed run is reported; the others finished
    assert read_status(victim)["status"] == "killed"
    finished_before = {p.name for p in runs.glob("mlp_*") if read_status(p)["status"] == "finished"}
    assert len(finished_before) == 7

    sweep2, base2 = load_sweep(path)
    outcome = run_sweep(sweep2, base2)
    assert outcome[victim.name] == "finished"
    assert sum(o == "skipped (finished)" for o in outcome.values()) == 7
    killed_table = _table(dir_ / "runs")
    # step_sleep only slows the loop: values equal the uninterrupted sweep's, run by run
    assert killed_table == reference


def _slate_sweep(tmp_path: Path, backend: str) -> Path:
    spec = {
        "experiment": "slate_toy",
        "task": "slate.train",
        "runs_dir": str(tmp_path / "runs"),
        "overrides": ["steps=4", "random_steps=2", "eval_every=2", "val_users=10", "test_users=20", "tracking.backends=[]"],
        "methods": {"REINFORCE+SoftMax": ["agent=reinforce", "ranker=softmax"], "STO": ["agent=sto", "ranker=none"]},
        "grid": {"env": ["focused_topdown", "focused_divpen"]},
        "seeds": [1, 2],
        "backend": backend,
        "workers": 2,
        "report_columns": ["env"],
        "report_metrics": ["test/return"],
    }
    path = tmp_path / "slate_sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_slate_sweep_2_methods_2_envs_2_seeds(tmp_path, backend, shared_data):
    if backend == "ray":
        pytest.importorskip("ray", reason="install rl4rec[ray]")
    sweep, base = load_sweep(_slate_sweep(tmp_path, backend))
    outcome = run_sweep(sweep, base)
    assert sorted(outcome.values()) == ["finished"] * 8
    md, html = build_report(tmp_path / "runs", "slate_toy")
    text = md.read_text()
    assert "| method | focused_topdown | focused_divpen |" in text
    assert "REINFORCE+SoftMax" in text and "STO" in text and "(n=2)" in text
    differ = text.split("### Parameters that differ between methods")[1].split("###")[0]
    assert "| key | REINFORCE+SoftMax | STO |" in differ  # keys down, methods across
    assert "| agent | reinforce | sto |" in differ and "| ranker | softmax | none |" in differ
    assert "| env |" not in differ  # the column key is in the headers, not repeated
    assert "curve_eval_return_focused_topdown.png" in text


def test_baseline_comparison_pairs_cells_and_tests_them():
    from scipy import stats

    from rl4rec.experiments.report import RunRecord, baseline_comparison

    def recs(method, column, values):
        return [RunRecord(f"{method}_{column}_{i}", method, column, i, "finished", {"ret": v}, {}) for i, v in enumerate(values)]

    ours = recs("sac", "env1", [10.0, 12.0, 11.0]) + recs("sac", "env2", [1.0, 2.0])
    base = recs("sac", "env1", [7.0, 8.0, 9.5, 8.5]) + recs("reinforce", "env2", [3.0, 4.0])
    rows = baseline_comparison(ours, base, "ret")
    assert [(r["method"], r["column"]) for r in rows] == [("sac", "env1")]  # only cells in both
    assert rows[0]["ci"].mean == 11.0 and rows[0]["baseline_ci"].mean == 8.25
    want = stats.ttest_ind([10.0, 12.0, 11.0], [7.0, 8.0, 9.5, 8.5], equal_var=False).pvalue
    assert abs(rows[0]["p"] - want) < 1e-9
    assert rows[0]["paired_p"] is None  # seeds 0-2 against 0-3: no pairing
    rows = baseline_comparison(ours, recs("sac", "env1", [9.0, 10.5, 10.0]), "ret")
    # paired by seed: differences 1.0, 1.5, 1.0 -> t = mean / (sd / sqrt(3))
    d = [1.0, 1.5, 1.0]
    mean, sd = sum(d) / 3, (sum((x - sum(d) / 3) ** 2 for x in d) / 2) ** 0.5
    assert abs(rows[0]["paired_p"] - 2 * stats.t.sf(mean / (sd / 3**0.5), df=2)) < 1e-9


def test_per_method_tasks_and_init_from_order_are_checked(tmp_path):
    base = {"experiment": "chain", "task": "smoke", "runs_dir": str(tmp_path / "runs"), "methods": {"a": [], "b": []}}
    with pytest.raises(ConfigError, match="tasks: 'c' is not a method"):
        load_sweep(_write(tmp_path, {**base, "tasks": {"c": "smoke"}}))
    with pytest.raises(ConfigError, match="must come before it"):
        load_sweep(_write(tmp_path, {**base, "init_from": {"a": "b"}}))
    with pytest.raises(ConfigError, match="evaluation or a tool"):
        expand(load_sweep(_write(tmp_path, {**base, "tasks": {"b": "genrec.eval"}}))[0])


def test_per_method_base_configs(tmp_path):
    """``bases`` gives a method its own base YAML (the SFT recipe beside the GRPO one); others keep
    ``base``; an unknown method is an error. The GRPO study file expands: an SFT run per seed, and
    every arm starts from the SFT run of its own seed."""
    (tmp_path / "slow.yaml").write_text("lr: 0.001\nsteps: 30\n")
    (tmp_path / "fast.yaml").write_text("lr: 0.05\n")
    spec = {"experiment": "bases", "task": "smoke", "runs_dir": str(tmp_path / "runs"), "base": "slow.yaml",
            "bases": {"b": "fast.yaml"}, "methods": {"a": [], "b": []}}
    members = expand(*load_sweep(_write(tmp_path, spec)))
    cfg = {m.method: m.config for m in members}
    assert (cfg["a"]["lr"], cfg["a"]["steps"], cfg["b"]["lr"]) == (0.001, 30, 0.05) and cfg["b"]["steps"] != 30
    with pytest.raises(ConfigError, match="bases: 'c' is not a method"):
        load_sweep(_write(tmp_path, {**spec, "bases": {"c": "fast.yaml"}}))
    study = expand(*load_sweep(Path(__file__).resolve().parents[2] / "configs" / "genrec" / "study" / "grpo_study.yaml"))
    sft = {m.seed: m.name for m in study if m.method == "SFT"}
    arms = [m for m in study if m.method != "SFT"]
    assert len(sft) == 3 and len(arms) == 15 * 3 and all(m.task == "genrec.grpo" and m.after == sft[m.seed] for m in arms)
    assert all(m.config["init_from"].endswith(sft[m.seed]) for m in arms)
    assert len({json.dumps(m.config, sort_keys=True) for m in arms if m.seed == 0}) == 15  # every arm changes something


def test_a_method_waits_for_its_source_and_fails_when_the_source_fails():
    from rl4rec.experiments.sweep import Member, _ready

    m = Member("grpo_seed0", "GRPO", {}, 0, {}, "genrec.grpo", after="sft_seed0")
    assert _ready(m, {}) is False  # the SFT run has not finished yet
    assert _ready(m, {"sft_seed0": "finished"}) is True
    assert _ready(m, {"sft_seed0": "skipped (finished)"}) is True
    assert _ready(m, {"sft_seed0": "failed (exit 1)"}) is None


def test_schedule_limits_retries_then_reports_and_fails_the_dependants(tmp_path, caplog):
    """The loop both backends share, with a fake backend: at most ``limit`` runs at a time, a
    failed run launched again ``max_retries`` times and then reported, its ``init_from``
    dependants failed without starting."""
    from rl4rec.experiments.sweep import Member, SweepConfig, _schedule

    sweep = SweepConfig(experiment="toy", runs_dir=str(tmp_path), max_retries=1)
    a, b = Member("a", "A", {}, 0, {}, "smoke"), Member("b", "B", {}, 0, {}, "smoke")
    todo = [a, b, Member("c", "C", {}, 0, {}, "smoke", after="a")]
    launched, busy = [], []

    def submit(member):
        launched.append(member.name)
        return len(launched)  # any hashable key

    def collect(running):
        busy.append(len(running))
        for key, (member, _) in list(running.items()):
            yield key, ("exited with 1 (status failed)", "exit 1") if member.name == "a" else None

    outcome: dict[str, str] = {}
    with caplog.at_level("WARNING", logger="rl4rec.experiments.sweep"):
        _schedule(sweep, todo, outcome, 1, submit, collect)
    assert launched == ["a", "b", "a"] and max(busy) == 1
    assert outcome == {"b": "pending", "a": "failed (exit 1)", "c": "failed (its init_from run a did not finish)"}
    assert "run a exited with 1 (status failed); retry 1/1" in caplog.text
    assert "run a failed after 2 attempt(s)" in caplog.text


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sigterm_to_the_sweep_driver_stops_its_workers_cleanly(tmp_path):
    """The driver killed with SIGTERM stops its running workers (they save 'last' and end
    'stopped') instead of leaving them orphaned; the next sweep resumes them."""
    path = _sweep_file(tmp_path, workers=1, max_retries=0, overrides=["steps=400", "eval_every=10", "save_every=10", "tracking.backends=[]", "step_sleep=0.02"])
    driver = subprocess.Popen([sys.executable, "-m", "rl4rec.cli", "sweep", str(path), "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    runs, running, deadline = tmp_path / "runs" / "toy", None, time.time() + 90
    while running is None and time.time() < deadline:
        running = next((p for p in (runs.glob("mlp_*") if runs.exists() else []) if (p / "checkpoints" / "last.pt").exists()
                        and read_status(p)["status"] == "running"), None)
        time.sleep(0.05)
    assert running is not None
    pid = int(read_status(running)["pid"])
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and read_status(running)["status"] == "running":
        time.sleep(0.1)
    assert read_status(running)["status"] == "stopped"
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # the worker exits (a zombie is reaped by init once the driver is gone)
            os.kill(pid, 0)
            time.sleep(0.1)
