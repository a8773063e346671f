"""TopicRec configuration: every constant of spec §1.1, the six named variants, and the §9 fixes.

``mode="faithful"`` (default) reproduces the official simulator including its quirks, so numbers
are comparable with the GeMS paper. ``mode="fixed"`` turns on every bug correction (``fix_*`` and
``disjoint_test_users``); each one is also its own switch (``None`` = follow ``mode``,
``True``/``False`` = force it either way). Two paper-text readings that the code contradicts
(``paper_exam_exponents``, ``unit_l2_users``) are plain opt-in switches in both modes: the paper's
numbers were produced by the code, and unit-L2 users make the environment degenerate.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Literal, NamedTuple

from rl4rec.config import ConfigError, field, validate

VariantName = Literal[
    "focused_topdown", "focused_mix", "focused_divpen", "diffuse_topdown", "diffuse_mix", "diffuse_divpen"
]
#: spec §1.13: variant -> (catalogue, click model, diversity penalty)
VARIANTS: dict[str, tuple[str, str, float]] = {
    "focused_topdown": ("focused", "tdPBM", 1.0),
    "focused_mix": ("focused", "mixPBM", 1.0),
    "focused_divpen": ("focused", "mixPBM", 3.0),
    "diffuse_topdown": ("diffuse", "tdPBM", 1.0),
    "diffuse_mix": ("diffuse", "mixPBM", 1.0),
    "diffuse_divpen": ("diffuse", "mixPBM", 3.0),
}
#: user populations; they share one stream unless ``disjoint_test_users`` (§1.12)
POPULATIONS = ("train", "val", "test", "logs")
FIX_NAMES = (
    "fix_boredom_alignment",
    "fix_divpen_threshold",
    "fix_relevance_mask",
    "fix_short_term_update",
    "disjoint_test_users",
)


class Fixes(NamedTuple):
    """The §9 corrections after resolving ``mode`` (True = corrected behaviour)."""

    boredom_alignment: bool
    divpen_threshold: bool
    relevance_mask: bool
    short_term_update: bool
    disjoint_test_users: bool


@dataclass(frozen=True)
class TopicRecConfig:
    """TopicRec user simulator (GeMS, WSDM 2023). Defaults = the paper's experiments (spec §1.1)."""

    variant: VariantName = field("focused_topdown", "named paper environment (spec §1.13); sets catalogue, click_model and diversity_penalty unless given")
    catalogue: str | None = field(None, "item embeddings: 'focused', 'diffuse' (released files) or a .npy path; null = the variant's")
    click_model: Literal["tdPBM", "mixPBM"] | None = field(None, "tdPBM (TopDown) or mixPBM (Mixed, DivPen); null = the variant's")
    diversity_penalty: float | None = field(None, "attractiveness divisor when a slate is not diverse (1.0 TopDown/Mixed, 3.0 DivPen); null = the variant's", gt=0.0)
    mode: Literal["faithful", "fixed"] = field("faithful", "faithful = official behaviour incl. bugs; fixed = every §9 correction on")
    num_items: int = field(1000, "catalogue size N; must equal the rows of the embeddings", ge=1)
    rec_size: int = field(10, "slate size K", ge=1)
    num_topics: int = field(10, "topics T", ge=1)
    topic_size: int = field(2, "sub-dimensions per topic; embedding dim = num_topics * topic_size", ge=1)
    episode_length: int = field(100, "step() calls per episode H; return = sum of their rewards", ge=1)
    env_offset: float = field(0.28, "relevance sigmoid centre on the normalised score")
    env_slope: float = field(100.0, "relevance sigmoid slope", gt=0.0)
    env_omega: float = field(0.9, "influence keep-rate: u <- omega u + (1-omega) e_clicked", ge=0.0, le=1.0)
    boredom_threshold: int = field(5, "clicks on one topic in the recent-click memory that make it bored", ge=1)
    recent_items_maxlen: int = field(10, "capacity of the recent-click memories A and S", ge=1)
    boredom_moving_window: int = field(5, "clicks stamped before t - window are (leakily) forgotten", ge=0)
    boredom_duration: int = field(5, "turns a topic stays bored (hard-coded 5 in the official code)", ge=1)
    short_term_boost: float = field(1.0, "multiplier on the short-term topic's dims (1.0 = no-op, all experiments)", ge=0.0)
    exam_gamma: float = field(0.85, "position-bias base gamma of the click models", gt=0.0, le=1.0)
    diversity_threshold: int = field(4, "DivPen triggers when a main topic fills >= this many slots (> with fix_divpen_threshold)", ge=1)
    sim_seed: int = field(24321357327, "seed of the simulator's user and click streams (never changed by the paper)", ge=0)
    click_only_once: bool = field(False, "unused official option: already clicked items get attractiveness 0 (and oracle score 0)")
    rel_threshold: float | None = field(None, "unused official option: relevance = 1[score > threshold] instead of the sigmoid")
    prop_threshold: float | None = field(None, "unused official option: examination = 1[exam > threshold]")
    paper_exam_exponents: bool = field(False, "§9.7: the paper's 1-based examination exponents (paper text, not a bug fix: not part of mode=fixed)")
    unit_l2_users: bool = field(False, "§9.3: users with unit L2 norm as the paper says (not part of mode=fixed: with offset 0.28 nearly every item becomes relevant)")
    fix_boredom_alignment: bool | None = field(None, "§9.4: stamp reset clicks (turn 0) so memories A and S stay aligned")
    fix_divpen_threshold: bool | None = field(None, "§9.6: DivPen when a topic fills MORE than diversity_threshold slots (paper), not >=")
    fix_relevance_mask: bool | None = field(None, "§9.9: relevances() masks bored topic k's dims [2k, 2k+2) instead of [2k, 3k)")
    fix_short_term_update: bool | None = field(None, "§9.8: short-term topic := topic of the last clicked item, not of item id = slot index")
    disjoint_test_users: bool | None = field(None, "§9.18: separate user streams for logs/train/val/test instead of one shared stream")

    def __post_init__(self) -> None:
        validate(self)  # direct construction is validated too, not only from_dict

    def check(self) -> None:
        if self.num_items < self.rec_size:
            raise ConfigError(f"num_items {self.num_items} must be >= rec_size {self.rec_size}")

    # ------------------------------------------------------------------ resolved values
    @property
    def resolved_catalogue(self) -> str:
        return self.catalogue if self.catalogue is not None else VARIANTS[self.variant][0]

    @property
    def resolved_click_model(self) -> str:
        return self.click_model if self.click_model is not None else VARIANTS[self.variant][1]

    @property
    def resolved_diversity_penalty(self) -> float:
        return self.diversity_penalty if self.diversity_penalty is not None else VARIANTS[self.variant][2]

    @property
    def fixes(self) -> Fixes:
        default = self.mode == "fixed"
        values = [getattr(self, n) for n in FIX_NAMES]
        return Fixes(*(default if v is None else v for v in values))

    def describe(self) -> dict:
        """All fields plus the resolved variant values and fixes (for sidecars and logs)."""
        out = dataclasses.asdict(self)
        out["resolved"] = {
            "catalogue": self.resolved_catalogue,
            "click_model": self.resolved_click_model,
            "diversity_penalty": self.resolved_diversity_penalty,
            "fixes": self.fixes._asdict(),
        }
        return out


def check_env_name(name: str) -> str:
    """Return ``name`` if it is a known variant, else raise listing the valid ones."""
    if name in VARIANTS:
        return name
    near = difflib.get_close_matches(name, list(VARIANTS), n=1, cutoff=0.4)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ConfigError(f"unknown TopicRec environment {name!r}{hint} (valid: {', '.join(VARIANTS)})")


def check_env_key(name: str) -> None:
    """:func:`check_env_name` for the ``env`` key of a command's config (the error names the key)."""
    try:
        check_env_name(name)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"env: {err}") from err


def variant_config(name: str, **overrides) -> TopicRecConfig:
    """Config of a named variant (spec §1.13), with optional field overrides."""
    return TopicRecConfig(variant=check_env_name(name), **overrides)
