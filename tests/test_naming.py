"""Run names: leading keys, only differing fields, the seed; stable and filesystem-safe."""

from __future__ import annotations

from rl4rec.config import apply_overrides
from rl4rec.naming import run_name

from .test_config import ToyConfig


def test_default_name_is_lead_keys_and_seed():
    cfg = apply_overrides(ToyConfig, {}, ["seed=58407201"])
    assert run_name(cfg) == "sac-gems_seed58407201"


def test_differing_fields_in_declaration_order():
    cfg = apply_overrides(
        ToyConfig,
        {},
        ["seed=58407201", "env.click_model=mixPBM", "lambda_kl=1.5", "gamma=0", "experiment=x", "threads=1"],
    )
    # lambda_kl uses its short name; bookkeeping keys (experiment, threads) never appear
    assert run_name(cfg) == "sac-gems_kl1.5_gamma0.0_click-model-mixPBM_seed58407201"


def test_name_is_stable_and_safe():
    a = apply_overrides(ToyConfig, {}, ["ranker=top_k", "hidden=[64, 32]", "seed=1"])
    b = apply_overrides(ToyConfig, {}, ["seed=1", "hidden=[64, 32]", "ranker=top_k"])
    assert run_name(a) == run_name(b) == "sac-top-k_hidden64+32_seed1"
    assert "/" not in run_name(apply_overrides(ToyConfig, {}, ["agent=a/b/c.pt"]))


def test_names_keep_three_keys_then_a_hash_and_never_pass_80_characters():
    import hashlib

    cfg = apply_overrides(ToyConfig, {}, ["seed=1", "lambda_kl=1.5", "gamma=0", "env.click_model=mixPBM", "hidden=[64, 32]"])
    digest = hashlib.sha1(b"click-model-mixPBM").hexdigest()[:6]  # the fourth differing key (declaration order) is hashed
    assert run_name(cfg) == f"sac-gems_kl1.5_gamma0.0_hidden64+32_{digest}_seed1"
    other = apply_overrides(ToyConfig, {}, ["seed=1", "lambda_kl=1.5", "gamma=0", "env.click_model=mixPBM", "hidden=[8]"])
    assert run_name(other) != run_name(cfg)  # what the hash hides still tells runs apart
    long = apply_overrides(ToyConfig, {}, ["seed=1", "agent=" + "a" * 120, "gamma=0"])
    assert len(run_name(long)) <= 80 and run_name(long).endswith("_seed1")


def test_a_run_of_an_older_name_is_found_by_its_stored_config(tmp_path):
    """Runs named by an earlier scheme still resume: the folder is looked up by config.yaml."""
    from rl4rec.runs import read_status, run_dir_for
    from rl4rec.smoke import SmokeConfig, train_smoke

    cfg = apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=20", "eval_every=10", "progress=false", "threads=1"])
    train_smoke(cfg)
    new = run_dir_for(cfg)
    old = new.with_name("mlp_an-older-longer-name_steps20_eval-every10_seed0")
    new.rename(old)
    assert run_dir_for(cfg) == old
    resumed = train_smoke(apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=20", "eval_every=10", "resume=true", "threads=1"]))
    assert resumed is not None and resumed["run_dir"] == str(old) and read_status(old)["status"] == "finished"
    assert not new.exists()
    changed = apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=30", "eval_every=10"])
    assert run_dir_for(changed).name == run_name(changed)  # another config: a new run


def test_a_key_added_since_a_run_was_stored_still_matches_at_its_default(tmp_path):
    import yaml

    from rl4rec.runs import run_dir_for
    from rl4rec.smoke import SmokeConfig

    cfg = apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=20"])
    old = tmp_path / "smoke" / "mlp_an-old-name_seed0"
    old.mkdir(parents=True)
    stored = {k: v for k, v in yaml.safe_load(yaml.safe_dump(__import__("rl4rec.config", fromlist=["to_dict"]).to_dict(cfg))).items() if k != "skip_nonfinite"}
    (old / "config.yaml").write_text(yaml.safe_dump(stored))  # written before skip_nonfinite existed
    assert run_dir_for(cfg) == old
    other = apply_overrides(SmokeConfig, {}, [f"runs_dir={tmp_path}", "steps=20", "skip_nonfinite=true"])
    assert run_dir_for(other) != old  # the new key at a non-default value: another run
