"""Slate training protocol: agents learn on focused_topdown, runs resume exactly, seeds batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rl4rec.config import ConfigError, apply_overrides
from rl4rec.runs import load_checkpoint, read_status, run_dir_for
from rl4rec.slate.train import SlateTrainConfig, retest_run, train_slate
from rl4rec.tracking import read_metrics

FAST = ["threads=1", "progress=false", "tracking.backends=[]", "val_users=50", "test_users=200"]


def _cfg(tmp_path, *extra):
    return apply_overrides(SlateTrainConfig, {}, [f"runs_dir={tmp_path}", *FAST, *extra])


def test_config_checks_agent_ranker_pairs_and_env_names(tmp_path):
    with pytest.raises(ConfigError, match="agent 'reinforce' works with softmax"):
        _cfg(tmp_path, "agent=reinforce", "ranker=gems")
    with pytest.raises(ConfigError, match="env"):
        _cfg(tmp_path, "env=focused_topdwn")
    cfg = _cfg(tmp_path, "seed=58407201", "hp.gamma=0.0")
    from rl4rec.naming import run_name

    assert run_name(cfg) == "sac-gems_focused-topdown_val-users50_test-users200_gamma0.0_seed58407201"


def test_reference_policies_match_fidelity_values(tmp_path, shared_data):
    sto = train_slate(_cfg(tmp_path, "agent=sto", "ranker=none", "test_users=500"))
    rnd = train_slate(_cfg(tmp_path, "agent=random", "ranker=none", "test_users=500"))
    # spec §1.14 (official simulator, 500 test users): STO 104.11 (SEM 1.95), random 34.20 (SEM 0.32)
    assert abs(sto["test/return"] - 104.11) < 3 * 1.95
    assert abs(rnd["test/return"] - 34.20) < 3 * 0.32


def test_sac_topk_ideal_learns(tmp_path, shared_data):
    """SAC+TopK(ideal) clearly beats the random policy (34) after 150 steps, for two batched seeds."""
    result = train_slate(_cfg(tmp_path, "agent=sac", "ranker=topk_ideal", "steps=150", "random_steps=30", "eval_every=50", "seeds=[1, 2]"))
    per_seed = result["test/return_per_seed"]
    assert set(per_seed) == {"1", "2"}
    assert min(per_seed.values()) > 80, per_seed


@pytest.mark.slow
def test_sac_gems_learns(tmp_path, shared_data):
    """SAC+GeMS (GeMS pretrained on 2,000 logged sessions) clearly beats random after 600 steps."""
    result = train_slate(
        _cfg(tmp_path, "agent=sac", "ranker=gems", "steps=600", "random_steps=100", "eval_every=100", "pretrain.sessions=2000", "pretrain.epochs=3")
    )
    assert result["test/return"] > 80, result


def _spawn(tmp_path, *extra):
    args = ["slate", "train", f"runs_dir={tmp_path}", *FAST, "--agent", "sac", "--ranker", "topk_ideal", "steps=60", "random_steps=10", "eval_every=20", "save_every=5", "batch_size=5", *extra]
    return subprocess.Popen([sys.executable, "-m", "rl4rec.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_kill_and_resume_gives_the_same_test_return(tmp_path, shared_data):
    ref = _spawn(tmp_path / "ref")
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out.decode()
    run_dir = next((tmp_path / "ref" / "slate").iterdir())
    reference = json.loads((run_dir / "test_results.json").read_text())

    proc = _spawn(tmp_path / "k")
    killed_dir, deadline = None, time.time() + 120
    while time.time() < deadline:
        dirs = list((tmp_path / "k" / "slate").glob("*")) if (tmp_path / "k" / "slate").exists() else []
        last = dirs[0] / "checkpoints" / "last.pt" if dirs else None
        if last is not None and last.exists() and load_checkpoint(last)["step"] >= 10:
            killed_dir = dirs[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_dir is not None, "no checkpoint at step >= 10 within 120 s"
    # the kill must land mid-run, or the resume below would test nothing
    assert read_status(killed_dir)["status"] == "killed" and not (killed_dir / "test_results.json").exists()
    assert 10 <= load_checkpoint(killed_dir / "checkpoints" / "last.pt")["step"] < 60
    again = _spawn(tmp_path / "k", "resume=true")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out.decode()
    resumed = json.loads((killed_dir / "test_results.json").read_text())
    assert resumed["test/return_per_seed"] == reference["test/return_per_seed"]
    # and `rl4rec slate test` re-tests the best checkpoint to the same number
    assert retest_run(killed_dir)["test/return"] == pytest.approx(resumed["test/return"])


def test_paper_configs_load_and_sweeps_expand():
    from pathlib import Path

    from rl4rec.config import load_config
    from rl4rec.experiments.sweep import expand, load_sweep

    root = Path(__file__).resolve().parents[2] / "configs" / "slate"
    configs = sorted(root.glob("*.yaml"))
    assert len(configs) >= 9
    for path in configs:
        load_config(SlateTrainConfig, path)
    sweep, base = load_sweep(root / "table2" / "sweep.yaml")
    members = expand(sweep, base)
    assert len(members) == 8 * 6 * 10 and len({m.name for m in members}) == len(members)
    laptop, base = load_sweep(root / "table2" / "sweep_laptop.yaml")
    assert len(expand(laptop, base)) == 8 * 3
    budget, base = load_sweep(root / "table2" / "sweep_laptop_2k.yaml")

    def differ(a: dict, b: dict, prefix: str = "") -> set[str]:
        keys = set(a) | set(b)
        out = set()
        for k in keys:
            if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                out |= differ(a[k], b[k], f"{prefix}{k}.")
            elif a.get(k) != b.get(k):
                out.add(prefix + k)
        return out

    laptop_cells = {(m.method, m.point["env"]): m for m in expand(laptop, base)}
    budget_members = expand(budget, base)
    assert [(m.method, m.point["env"]) for m in budget_members][:2] == [("SAC+TopK(ideal)", "focused_topdown"), ("SAC+GeMS", "focused_topdown")]
    for m in budget_members:  # only the budget (and, where the method says so, the alpha-init fix) differs from the laptop cell
        method = m.method.split(",")[0]
        fix = {"hp.fix_alpha_init"} if "fixed alpha" in m.method else set()
        assert differ(m.config, laptop_cells[(method, m.point["env"])].config) <= {"steps", "eval_every", "experiment", *fix}
    fixed, base = load_sweep(root / "table2" / "sweep_laptop_fixed_alpha.yaml")
    fixed_members = expand(fixed, base)
    assert len(fixed_members) == 3 * 3  # the SAC cells; only the alpha-init switch differs from their faithful twins
    for m in fixed_members:
        twin = laptop_cells[(m.method, m.point["env"])]
        assert differ(m.config, twin.config) == {"hp.fix_alpha_init", "experiment"}


def test_gems_pretraining_lowers_validation_loss(tmp_path, shared_data):
    import numpy as np
    import torch

    from rl4rec.slate.env.config import variant_config
    from rl4rec.slate.logs import generate_logs
    from rl4rec.slate.rankers import GeMS, GeMSConfig
    from rl4rec.slate.rankers.pretrain import PretrainConfig, pretrain_gems

    logs = generate_logs(variant_config("focused_topdown"), 200, tmp_path / "logs", progress=False)
    slates = torch.from_numpy(np.asarray(logs.slates).astype(np.int64))
    clicks = torch.from_numpy(np.asarray(logs.clicks).astype(np.float32))
    gems = GeMS([1, 2], 1000, 10, GeMSConfig())
    history = pretrain_gems(gems, slates, clicks, PretrainConfig(sessions=200, epochs=2), seed=1, progress=False)
    assert history["val"][-1] < history["val"][0] - 0.5, history  # reconstruction + KL on held-out sessions


@pytest.mark.parametrize("agent,ranker", [("sac", "topk_ideal"), ("sac", "wknn"), ("reinforce", "softmax"), ("slateq", "none"), ("random", "none")])
def test_agents_declare_every_optimizer_and_generator_they_hold(tmp_path, shared_data, agent, ranker):
    """Checkpoints save the declared optimizers/generators: the declaration must list all of them."""
    import torch

    from rl4rec.slate.train import build_agent, make_sim

    cfg = _cfg(tmp_path, f"agent={agent}", f"ranker={ranker}")
    built = build_agent(cfg, make_sim(cfg), cfg.seed_list)
    held = {n for n, v in vars(built).items() if isinstance(v, (torch.optim.Optimizer, torch.Generator))}
    assert held == set(built.optimizers()) | set(built.generators())
    assert all(isinstance(o, torch.optim.Optimizer) for o in built.optimizers().values())


@pytest.mark.parametrize("agent,ranker", [(a, r) for a, rankers in __import__("rl4rec.slate.train", fromlist=["AGENT_RANKERS"]).AGENT_RANKERS.items() for r in rankers])
def test_every_agent_ranker_pair_runs_end_to_end_and_updates_what_it_must(tmp_path, shared_data, agent, ranker, monkeypatch):
    """Each pair of the protocol, tiny: random actions for 3 steps, then 3 learning steps. The learning
    agents change their networks between step 3 and step 6; a pretrained GeMS stays frozen; the
    reference policies have nothing to learn; every return is finite."""
    import math

    import torch

    monkeypatch.setenv("RL4REC_SHARED_DATA", str(shared_data))
    cfg = _cfg(tmp_path, f"agent={agent}", f"ranker={ranker}", "steps=6", "random_steps=3", "batch_size=2", "eval_every=3", "keep_every=3",
               "val_users=10", "test_users=20", "pretrain.sessions=60", "pretrain.epochs=1")
    result = train_slate(cfg)
    assert math.isfinite(result["test/return"])
    if agent in ("random", "sto"):  # nothing to learn: tested directly, no training steps
        assert result["steps"] == 0
        return
    assert result["steps"] == 6
    run_dir = next((tmp_path / "slate").iterdir())
    before, after = (load_checkpoint(run_dir / "checkpoints" / f"step_{s}.pt")["task"]["agent"] for s in (3, 6))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "no parameter changed in 3 learning steps"
    frozen = {k for k in before if k.startswith("ranker.") or k in ("center", "scale")}  # GeMS / item tables / action box
    assert ranker != "gems" or any(k.startswith("ranker.decoder") or k.startswith("ranker.trunk") for k in frozen), sorted(frozen)
    assert not (changed & frozen), f"the ranker must stay frozen: {sorted(changed & frozen)}"


def test_mf_pretraining_end_to_end_feeds_sac_topk_mf(tmp_path, shared_data, monkeypatch):
    """``slate pretrain ranker=mf`` on freshly logged sessions: BPR factors of every item, finite, with
    a validation loss below the untrained one (ln 2 for scores near 0); SAC+TopK(MF) then acts on them."""
    import math

    import numpy as np

    from rl4rec.slate.pretrain import SlatePretrainConfig, pretrain_ranker

    monkeypatch.setenv("RL4REC_SHARED_DATA", str(shared_data))
    pre = apply_overrides(SlatePretrainConfig, {}, [f"runs_dir={tmp_path}", "ranker=mf", "pretrain.sessions=300", "mf.max_epochs=3",
                                                    "mf.eval_every=20", "mf.lr=0.01", "threads=1", "progress=false", "tracking.backends=[]"])
    result = pretrain_ranker(pre)
    table = np.load(result["mf_embeddings"])
    assert table.shape == (1000, 20) and np.isfinite(table).all()
    assert result["eval/mf_val_loss"] < math.log(2) - 0.01, result
    run = train_slate(_cfg(tmp_path, "agent=sac", "ranker=topk_mf", f"mf_embeddings={result['mf_embeddings']}", "steps=4",
                           "random_steps=2", "batch_size=2", "val_users=10", "test_users=20"))
    assert math.isfinite(run["test/return"]) and run["steps"] == 4


def test_gems_cache_gives_the_run_it_would_have_been(tmp_path, shared_data):
    """A run whose GeMS comes from gems_cache has the same metrics and test return as the run that
    pretrained it (and as a run without the cache); other pretraining settings miss the cache."""
    common = ["agent=sac", "ranker=gems", "steps=30", "random_steps=10", "eval_every=15", "pretrain.sessions=60", "pretrain.epochs=2",
              "pretrain.bounds_sessions=20", f"gems_cache={tmp_path / 'cache'}"]

    def metrics(cfg):
        return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/")} for r in read_metrics(run_dir_for(cfg) / "metrics.jsonl")]

    cfgs = {name: _cfg(tmp_path / name, *(common[:-1] if name == "plain" else common)) for name in ("plain", "a", "b")}
    plain = train_slate(cfgs["plain"])
    first = train_slate(cfgs["a"])
    cached = sorted((tmp_path / "cache").glob("gems_focused_topdown_*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = train_slate(cfgs["b"])
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not pretrained again
    assert not (run_dir_for(cfgs["b"]) / "logs").exists()  # no logged data generated either
    assert first["test/return"] == second["test/return"] == plain["test/return"]
    assert metrics(cfgs["a"]) == metrics(cfgs["b"]) == metrics(cfgs["plain"])
    assert any("eval/gems_val_loss" in r for r in metrics(cfgs["b"]))  # pretraining's records are replayed
    train_slate(_cfg(tmp_path / "c", *common, "pretrain.epochs=1"))
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    with pytest.raises(ConfigError, match="not both"):
        _cfg(tmp_path, *common, "gems_checkpoint=x.pt")


def test_sweep_chains_mf_pretraining_into_topk_mf(tmp_path, shared_data):
    """A sweep's init_from hands each seed's `slate pretrain --ranker mf` run to its SAC+TopK(MF) run,
    which then trains on those factors: the same test return as naming the file by mf_embeddings."""
    import yaml

    from rl4rec.experiments.sweep import load_sweep, run_sweep

    train = ["agent=sac", "ranker=topk_mf", "steps=30", "random_steps=10", "eval_every=15", *FAST]
    spec = {"experiment": "own_mf", "task": "slate.train", "tasks": {"MF": "slate.pretrain"}, "init_from": {"SAC+TopK(MF)": "MF"},
            "runs_dir": str(tmp_path / "runs"), "workers": 1,
            "methods": {"MF": ["ranker=mf", "pretrain.sessions=60", "mf.max_epochs=1", "threads=1", "progress=false", "tracking.backends=[]"],
                        "SAC+TopK(MF)": train},
            "seeds": [3]}
    path = tmp_path / "own_mf.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert set(run_sweep(*load_sweep(path)).values()) == {"finished"}
    exp = tmp_path / "runs" / "own_mf"
    (mf_run,) = [p for p in exp.iterdir() if (p / "mf_focused_topdown.npy").is_file()]
    (sac_run,) = [p for p in exp.iterdir() if p.name.startswith("sac-topk-mf")]
    chained = json.loads((sac_run / "test_results.json").read_text())["test/return"]
    direct = train_slate(_cfg(tmp_path / "direct", *train[:-len(FAST)], "seed=3", f"mf_embeddings={mf_run / 'mf_focused_topdown.npy'}"))
    released = train_slate(_cfg(tmp_path / "released", *train[:-len(FAST)], "seed=3"))
    assert chained == direct["test/return"] != released["test/return"]
    with pytest.raises(ConfigError, match="init_from"):
        _cfg(tmp_path, "agent=sac", "ranker=topk_ideal", f"init_from={mf_run}")
    with pytest.raises(ConfigError, match="not both"):
        _cfg(tmp_path, "agent=sac", "ranker=topk_mf", f"init_from={mf_run}", "mf_embeddings=x.npy")
