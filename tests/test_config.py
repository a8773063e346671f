"""Config loading: YAML + dotted overrides, and the errors a typo or a bad value must raise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, apply_overrides, describe, field, load_config, parse_override, to_dict


@dataclass(frozen=True)
class EnvSection:
    click_model: Literal["tdPBM", "mixPBM"] = field("tdPBM", "click model")
    diversity_threshold: int = field(4, "DivPen threshold", ge=1, le=10)
    omega: float = field(0.9, "influence keep-rate", ge=0.0, le=1.0)


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    NAME_KEYS = ("agent", "ranker")
    agent: str = field("sac", "agent", short="")
    ranker: str = field("gems", "ranker", short="")
    lambda_kl: float = field(1.0, "KL weight", short="kl", ge=0.0)
    gamma: float = field(0.8, "discount", ge=0.0, le=1.0)
    hidden: tuple[int, ...] = field((256,), "hidden sizes")
    env: EnvSection = field(default_factory=EnvSection, help="environment")


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("gamma: 0.5\nenv:\n  omega: 0.8\nhidden: [64, 64]\n")
    cfg = load_config(ToyConfig, path, ["env.click_model=mixPBM", "seed=3", "lambda_kl=2"])
    assert cfg.gamma == 0.5 and cfg.env.omega == 0.8 and cfg.env.click_model == "mixPBM"
    assert cfg.seed == 3 and cfg.lambda_kl == 2.0 and isinstance(cfg.lambda_kl, float)
    assert cfg.hidden == (64, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.gamma = 0.1  # type: ignore[misc]


def test_unknown_key_names_nearest():
    with pytest.raises(ConfigError) as err:
        apply_overrides(ToyConfig, {}, ["env.diversity_treshold=5"])
    msg = str(err.value)
    assert "env.diversity_treshold" in msg and "did you mean env.diversity_threshold" in msg


def test_unknown_top_level_key_in_yaml(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("gama: 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'gama'.*did you mean gamma"):
        load_config(ToyConfig, path)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("seed=abc", r"seed: expected an integer, got 'abc'"),
        ("gamma=high", r"gamma: expected a number"),
        ("resume=3", r"resume: expected true/false"),
        ("env.click_model=mixpbm", r"env.click_model: 'mixpbm' is not one of .*did you mean mixPBM"),
        ("gamma=1.5", r"gamma: 1.5 is out of range \(must be <= 1.0\)"),
        ("env.diversity_threshold=0", r"env.diversity_threshold: 0 is out of range \(must be >= 1\)"),
        ("hidden=[64, x]", r"hidden\[1\]: expected an integer"),
        ("env=3", r"env: expected a mapping"),
        ("gamma.x=1", r"gamma is not a section"),
        ("noequals", r"must look like key=value"),
    ],
)
def test_bad_values_fail_with_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(ToyConfig, {}, [override])


def test_parse_override_types():
    assert parse_override("a=1e-3") == ("a", 1e-3)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=foo=bar") == ("a", "foo=bar")


def test_every_field_documented_and_round_trip():
    rows = describe(ToyConfig)
    keys = [r[0] for r in rows]
    assert "env.click_model" in keys and "tracking.backends" in keys
    assert all(r[3] for r in rows), "every field has a help text"
    cfg = apply_overrides(ToyConfig, {}, ["gamma=0.3", "env.omega=0.5"])
    again = apply_overrides(ToyConfig, to_dict(cfg), [])
    assert again == cfg


def test_field_requires_help():
    with pytest.raises(TypeError):
        field(1)


def test_cross_field_check():
    with pytest.raises(ConfigError, match="must not contain"):
        apply_overrides(ToyConfig, {}, ["experiment=a/b"])


def test_a_bare_no_on_the_command_line_is_the_choice_no():
    """YAML reads ``mixed_precision=no`` as False; a Literal with a 'no' choice takes it as 'no'."""
    from rl4rec.smoke import SmokeConfig

    assert apply_overrides(SmokeConfig, {}, ["mixed_precision=no"]).mixed_precision == "no"
    with pytest.raises(ConfigError, match="progress: expected true/false"):
        apply_overrides(SmokeConfig, {}, ["progress=bf16"])
