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
