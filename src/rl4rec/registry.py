"""Every pipeline declared once: the CLI commands, sweep tasks (the quickstart's sections are sweep
files over them) and ``rl4rec config`` all come from :data:`PIPELINES`.

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

__all__ = ["Pipeline", "PIPELINES", "FAMILIES", "get_pipeline", "get_task", "load", "sweep_tasks", "format_json"]


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
    #: config keys that also have a ``--flag`` (``data_dir`` -> ``--data-dir``; ``env=sim.variant``
    #: names the flag and its dotted key)
    flags: tuple[str, ...] = ()
    #: boolean config keys with a value-less ``--flag`` that sets them true
    switches: tuple[str, ...] = ()
    #: a config key given as the first positional argument (``rl4rec genrec eval RUN``)
    positional: str | None = None
    #: ``module:function(runs_dir, overrides, progress)``: the whole path on synthetic data (``--smoke``)
    smoke: str | None = None
    #: a training pipeline (can be swept); evaluations and tools are not
    trains: bool = True

    def config_class(self) -> type:
        return load(self.config)

    def run(self, cfg: Any) -> dict[str, Any] | None:
        return load(self.entry)(cfg)

    def format(self, result: dict[str, Any]) -> str:
        return load(self.formatter)(result)


_SIM_FLAGS = ("env=sim.variant", "mode=sim.mode", "embeddings=sim.catalogue", "device")

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
             "rl4rec.genrec.grpo.trainer:format_results", "GRPO of an SFT run with recommendation rewards (beam or sampled rollouts); --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.smoke:sid_smoke"),
    Pipeline("genrec.grpo_text", ("genrec", "grpo-text"), "rl4rec.genrec.grpo.config:TextGRPOConfig", "rl4rec.genrec.grpo.trainer:train_grpo",
             "rl4rec.genrec.grpo.trainer:format_results", "free-text GRPO grounded by retrieval (ndcg/hit/mrr/mixed of the target's rank); --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.smoke:text_smoke"),
    Pipeline("genrec.latent_sft", ("genrec", "latent-sft"), "rl4rec.genrec.latent.sft:LatentSFTConfig", "rl4rec.genrec.latent.sft:train_latent_sft",
             "rl4rec.genrec.latent.cli:format_results", "SFT of an LM + latent thought module on title generation (LatentR3-style)"),
    Pipeline("genrec.latent_grpo", ("genrec", "latent-grpo"), "rl4rec.genrec.latent.grpo:LatentGRPOConfig", "rl4rec.genrec.latent.grpo:train_latent_grpo",
             "rl4rec.genrec.latent.cli:format_results", "noise-GRPO of the latent module with the LM frozen; --smoke on synthetic data",
             flags=("init_from",), smoke="rl4rec.genrec.smoke:latent_smoke"),
    # tools: no run folder, not swept
    Pipeline("slate.eval_policy", ("slate", "eval-policy"), "rl4rec.slate.tools:EvalPolicyConfig", "rl4rec.slate.tools:eval_policy",
             "rl4rec.slate.tools:format_eval_policy", "mean/std/SEM of a reference policy's return over the test users",
             flags=("policy", "epsilon", "users", "seed", *_SIM_FLAGS), trains=False),
    Pipeline("slate.generate_logs", ("slate", "generate-logs"), "rl4rec.slate.tools:GenerateLogsConfig", "rl4rec.slate.tools:generate_logs",
             "rl4rec.slate.tools:format_logs", "logged sessions of the epsilon-greedy oracle (GeMS / MF training data)",
             flags=("sessions", "seed", "epsilon", "out", "batch_size", *_SIM_FLAGS), switches=("overwrite",), trains=False),
    Pipeline("slate.generate_embeddings", ("slate", "generate-embeddings"), "rl4rec.slate.tools:GenerateEmbeddingsConfig",
             "rl4rec.slate.tools:generate_embeddings", "rl4rec.slate.tools:format_embeddings",
             "draw a new item catalogue (.npy) with the paper's recipe", flags=("out", "peak_power", "seed", "num_items"), trains=False),
    Pipeline("genrec.data", ("genrec", "data"), "rl4rec.genrec.tools:DataCheckConfig", "rl4rec.genrec.tools:check_data",
             "rl4rec.genrec.tools:format_data", "load and validate a category; print counts; optionally write the train rebuild",
             flags=("dataset", "data_dir", "train_recipe", "write_train"), switches=("skip_bad_rows",), trains=False),
    Pipeline("genrec.preprocess", ("genrec", "preprocess"), "rl4rec.genrec.tools:PreprocessCommandConfig", "rl4rec.genrec.tools:preprocess",
             "rl4rec.registry:format_json", "raw Amazon 2018 review + metadata JSON lines -> a category folder",
             flags=("reviews", "meta", "out", "name"), trains=False),
    Pipeline("genrec.synth", ("genrec", "synth"), "rl4rec.genrec.tools:SynthCommandConfig", "rl4rec.genrec.tools:synth",
             "rl4rec.genrec.tools:format_synth", "write a synthetic category with a known next-item rule", flags=("out",), trains=False),
    Pipeline("genrec.build_sids", ("genrec", "build-sids"), "rl4rec.genrec.sid.build:SIDBuildConfig", "rl4rec.genrec.sid.build:build_sids",
             "rl4rec.genrec.sid.build:summarize", "semantic IDs: embeddings -> RQ-KMeans / RQ-VAE -> collision handling -> index.json",
             flags=("dataset", "data_dir", "method", "encoder", "out"), trains=False),
)

#: the command groups: ``rl4rec <family> ...``
FAMILIES: dict[str, str] = {
    "slate": "slate recommendation with RL in the TopicRec user simulator (GeMS)",
    "genrec": "generative recommendation: datasets, semantic IDs, baselines, SFT, GRPO, latent reasoning",
}


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


def sweep_tasks() -> dict[str, Pipeline]:
    """The pipelines a sweep can run (every training pipeline)."""
    return {p.name: p for p in PIPELINES if p.trains}


def get_task(name: str) -> tuple[type, Any]:
    """The config class and entry of a sweepable pipeline; unknown names list the valid ones."""
    pipeline = get_pipeline(name)
    if not pipeline.trains:
        raise KeyError(f"{name!r} is an evaluation or a tool, not a training pipeline; sweepable: {', '.join(sorted(sweep_tasks()))}")
    return pipeline.config_class(), pipeline.run


def format_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
