"""Every pipeline declared once: the CLI commands, sweep tasks, ``rl4rec config`` and the
quickstart stages all come from :data:`PIPELINES` and :data:`QUICKSTART_STAGES`.

An entry names its config class, the function that runs a config, the formatter of its result and
the command that starts it; everything is an import string, so listing pipelines (``rl4rec
--help``, ``rl4rec sweep --dry-run``) imports nothing heavy.

Every command reads ``[CONFIG.yaml] [--config CONFIG.yaml] [--flag VALUE ...] [key=value ...]``:
the YAML file, then the flags (shortcuts for config keys, listed per entry), then the overrides.
"""

from __future__ import annotations

import difflib
import importlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Pipeline", "PIPELINES", "QUICKSTART_STAGES", "get_pipeline", "pipeline_for_command", "load", "sweep_tasks", "format_json"]


@dataclass(frozen=True)
class Pipeline:
    """One runnable pipeline."""

    #: the sweep task name, e.g. ``genrec.sft``
    name: str
    #: the CLI path, e.g. ``("genrec", "sft")``
    command: tuple[str, ...]
    #: ``module:ConfigClass``
    config: str
    #: ``module:function`` taking the config, returning the result dict (``None`` when stopped)
    entry: str
    #: ``module:function`` turning a result into the text the command prints
    formatter: str
    help: str
    #: config keys that also have a ``--flag`` (``data_dir`` -> ``--data-dir``)
    flags: tuple[str, ...] = ()
    #: a config key given as the first positional argument (``rl4rec genrec eval RUN``)
    positional: str | None = None
    #: ``module:function(runs_dir, overrides, progress)``: the whole path on synthetic data (``--smoke``)
    smoke: str | None = None
    #: a training pipeline (can be swept); evaluations are not
    trains: bool = True

    def config_class(self) -> type:
        return load(self.config)

    def run(self, cfg: Any) -> dict[str, Any] | None:
        return load(self.entry)(cfg)

    def format(self, result: dict[str, Any]) -> str:
        return load(self.formatter)(result)


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("smoke", ("smoke",), "rl4rec.smoke:SmokeConfig", "rl4rec.smoke:train_smoke", "rl4rec.smoke:format_results",
             "tiny end-to-end training run (checks the install, runs, resume)"),
    Pipeline("slate.train", ("slate", "train"), "rl4rec.slate.train:SlateTrainConfig", "rl4rec.slate.train:train_slate",
             "rl4rec.registry:format_json", "train an agent under the paper protocol (train, validate, test the best)",
             flags=("agent", "ranker", "env", "seed")),
    Pipeline("slate.pretrain", ("slate", "pretrain"), "rl4rec.slate.pretrain:SlatePretrainConfig", "rl4rec.slate.pretrain:pretrain_ranker",
             "rl4rec.registry:format_json", "pretrain GeMS or MF embeddings on logged data", flags=("ranker", "env", "seed")),
    Pipeline("slate.test", ("slate", "test"), "rl4rec.slate.train:SlateTestConfig", "rl4rec.slate.train:retest",
             "rl4rec.registry:format_json", "re-test a run's best checkpoint on the test users", positional="run", trains=False),
    Pipeline("genrec.baseline", ("genrec", "train-baseline"), "rl4rec.genrec.baselines.train:BaselineConfig",
             "rl4rec.genrec.baselines.train:train_baseline", "rl4rec.genrec.baselines.train:format_results",
             "train + test a baseline (pop, sasrec, gru4rec); writes test_results.json", flags=("model", "dataset", "data_dir")),
    Pipeline("genrec.sft", ("genrec", "sft"), "rl4rec.genrec.sft_config:SFTConfig", "rl4rec.genrec.sft:train_sft",
             "rl4rec.genrec.sft:format_results", "supervised fine-tuning of a causal LM on the SID task mixture (then a test evaluation)",
             flags=("dataset", "data_dir")),
    Pipeline("genrec.eval", ("genrec", "eval"), "rl4rec.genrec.evaluate:EvalConfig", "rl4rec.genrec.evaluate:evaluate",
             "rl4rec.genrec.evaluate:format_eval", "constrained beam-search evaluation of an SFT/GRPO run: HR/NDCG@K, predictions JSONL, baselines table",
             positional="run", trains=False),
    Pipeline("genrec.grpo", ("genrec", "grpo"), "rl4rec.genrec.grpo.config:GRPOConfig", "rl4rec.genrec.grpo.trainer:train_grpo",
             "rl4rec.genrec.grpo.cli:format_results", "GRPO of an SFT run with recommendation rewards (beam or sampled rollouts); --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.grpo.cli:run_smoke"),
    Pipeline("genrec.grpo_text", ("genrec", "grpo-text"), "rl4rec.genrec.grpo.config:TextGRPOConfig", "rl4rec.genrec.grpo.trainer:train_grpo",
             "rl4rec.genrec.grpo.cli:format_results", "free-text GRPO grounded by retrieval (ndcg/hit/mrr/mixed of the target's rank); --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.grpo.cli:run_text_smoke"),
    Pipeline("genrec.latent_sft", ("genrec", "latent-sft"), "rl4rec.genrec.latent.sft:LatentSFTConfig", "rl4rec.genrec.latent.sft:train_latent_sft",
             "rl4rec.genrec.latent.cli:format_results", "SFT of an LM + latent thought module on title generation (LatentR3-style)"),
    Pipeline("genrec.latent_grpo", ("genrec", "latent-grpo"), "rl4rec.genrec.latent.grpo:LatentGRPOConfig", "rl4rec.genrec.latent.grpo:train_latent_grpo",
             "rl4rec.genrec.latent.cli:format_results", "noise-GRPO of the latent module with the LM frozen; --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.latent.cli:run_smoke"),
)

#: the quickstart's stages in order: ``name -> module:function(runs_dir) -> report rows``
QUICKSTART_STAGES: tuple[tuple[str, str], ...] = (
    ("smoke", "rl4rec.quickstart:stage_smoke"),
    ("slate", "rl4rec.slate.quickstart:stage_slate"),
    ("genrec-baselines", "rl4rec.genrec.quickstart:stage_baselines"),
    ("genrec-sft", "rl4rec.genrec.quickstart:stage_sft"),
    ("genrec-grpo", "rl4rec.genrec.quickstart:stage_grpo"),
    ("genrec-grpo-text", "rl4rec.genrec.quickstart:stage_grpo_text"),
    ("genrec-latent", "rl4rec.genrec.quickstart:stage_latent"),
)


def load(path: str) -> Any:
    """``module:attribute`` -> the attribute."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_pipeline(name: str) -> Pipeline:
    """A pipeline by sweep name (``genrec.sft``); unknown names list the valid ones."""
    by_name = {p.name: p for p in PIPELINES}
    if name not in by_name:
        near = difflib.get_close_matches(name, by_name, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise KeyError(f"unknown pipeline {name!r}{hint}; known: {', '.join(sorted(by_name))}")
    return by_name[name]


def pipeline_for_command(command: tuple[str, ...]) -> Pipeline | None:
    return next((p for p in PIPELINES if p.command == tuple(command)), None)


def sweep_tasks() -> dict[str, Pipeline]:
    """The pipelines a sweep can run (every training pipeline)."""
    return {p.name: p for p in PIPELINES if p.trains}


def format_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
