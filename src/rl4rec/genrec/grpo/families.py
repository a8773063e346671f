"""What differs between SID GRPO and free-text GRPO, behind one small interface the trainer uses:
the prompt pool, the rollouts (with everything the rewards need), validation and the test.

- :class:`SIDFamily` (``GRPOConfig``): SID-answer tasks, trie-constrained beam/sampled rollouts,
  item rewards, beam-search evaluation (spec genrec.md §7-8).
- :class:`TextFamily` (``TextGRPOConfig``): the ``seq_title2title`` task, sampled free text
  (HF ``generate`` or vLLM), grounded by a retrieval service whose target rank is the reward, and
  the same HR/NDCG@K of the grounded greedy text (spec §10).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl4rec.config import ConfigError
from rl4rec.genrec.grpo.config import GRPOConfig, TextGRPOConfig
from rl4rec.genrec.grpo.rewards import RewardContext, Rollouts, ground_texts
from rl4rec.genrec.grpo.rollout import RolloutBatch, generate_rollouts, merge_rollouts, mixed_split
from rl4rec.training import reported_ks

log = logging.getLogger(__name__)

__all__ = ["SIDFamily", "TextFamily", "make_family"]


def _encode(loaded, samples, *, reserve: int) -> list[list[int]]:
    """Prompt ids of every sample (RL phase), encoded once per run."""
    from rl4rec.genrec.prompts import prompt_ids

    max_len = loaded.cfg.max_len
    return [prompt_ids(loaded.builder, loaded.tokenizer, s, max_len=max_len, reserve=reserve, phase="rl")[0] for s in samples]


def _warn_untrained(loaded, tasks) -> None:
    """GRPO may start from any model, but one never trained on the rollout task rarely earns a reward."""
    trained = loaded.cfg.tasks.weights()
    if not any(t in trained for t in tasks):
        log.warning("the SFT run %s trained %s, none of the GRPO tasks %s: expect mostly zero rewards", loaded.run_dir, sorted(trained), sorted(tasks))


class SIDFamily:
    """Semantic-ID answers, decoded under the item trie."""

    def __init__(self, cfg: GRPOConfig, loaded, device):
        self.cfg, self.loaded, self.device = cfg, loaded, device
        self.weights = cfg.tasks.weights()  # the prompt mixture's task weights
        _warn_untrained(loaded, self.weights)
        self.trie = loaded.trie.to(device)
        beams = {"beam": cfg.group_size, "mixed": mixed_split(cfg.group_size, cfg.beam_share)}.get(cfg.rollout, 0)
        if beams > self.trie.num_sids:
            raise ConfigError(f"{cfg.rollout} rollouts: {beams} distinct beams, but the catalog has only {self.trie.num_sids} distinct SIDs")
        self.lp_trie = self.trie if cfg.logprob_space == "trie" else None
        self.pad_id = self.trie.pad_id
        self.ks = reported_ks(cfg.ks, cfg.select_metric, cfg.eval_beams)

    def describe(self) -> str:
        return f"rollout={self.cfg.rollout}"

    def prompt_pool(self):
        """(samples, prompt ids, sizes per task): the GRPO prompt mixture, encoded once."""
        from rl4rec.genrec.sft import build_samples

        cfg, train = self.cfg, self.loaded.dataset.train
        rows = {}
        if "seq_title2sid" in self.weights and len(train) > cfg.seq_title2sid_rows:  # spec §7.1, without the crash on fewer rows
            pick = np.sort(np.random.default_rng(0).choice(len(train), cfg.seq_title2sid_rows, replace=False))
            rows["seq_title2sid"] = [train[i] for i in pick]
        pools = build_samples(self.loaded.builder, self.loaded.dataset, self.weights, rows)
        samples = [s for part in pools.values() for s in part]
        reserve = self.trie.max_sid_len + len(self.trie.suffix_ids)
        return samples, _encode(self.loaded, samples, reserve=reserve), {t: len(part) for t, part in pools.items()}

    def reward_context(self, cache_dir: Path) -> RewardContext:
        """What the configured rewards need: item embeddings (semantic), the CF scorer (cf)."""
        cfg, catalog = self.cfg, self.loaded.dataset.catalog
        ctx = RewardContext(invalid_reward=cfg.invalid_reward, group_size=cfg.group_size, aggregation=cfg.reward_aggregation)
        if "prefix" in cfg.rewards:
            ctx.item_codes = torch.as_tensor(np.asarray(catalog.sids.codes), dtype=torch.long)
        if "semantic" in cfg.rewards:
            if cfg.semantic_embeddings:
                emb = np.load(cfg.semantic_embeddings)
                if emb.shape[0] != len(catalog):
                    raise ValueError(f"semantic_embeddings: {emb.shape[0]} rows for {len(catalog)} items")
            else:
                from rl4rec.genrec.sid.text import embed_items, make_encoder

                emb = embed_items(catalog, make_encoder(cfg.semantic_encoder), cache_dir=cache_dir)
            ctx.item_embeddings = torch.as_tensor(emb, dtype=torch.float32)
        if "cf" in cfg.rewards:
            from rl4rec.genrec.baselines.models import load_model

            scorer = load_model(cfg.cf_model)
            if scorer.num_items != len(catalog):
                raise ValueError(f"cf_model: scores {scorer.num_items} items, the catalog has {len(catalog)}")
            ctx.cf_scorer = scorer
        return ctx

    def rollouts(self, policy, batch, generator) -> tuple[RolloutBatch, Rollouts]:
        cfg, b = self.cfg, len(batch.prompts)
        rolls = merge_rollouts([
            generate_rollouts(
                policy, batch.prompts[c : c + cfg.rollout_batch], batch.targets[c : c + cfg.rollout_batch], batch.prompt_ids[c : c + cfg.rollout_batch],
                self.trie, group_size=cfg.group_size, mode=cfg.rollout, temperature=cfg.temperature, dynamic_sampling=cfg.dynamic_sampling,
                oversample=cfg.oversample, add_gt=cfg.add_gt, beam_share=cfg.beam_share, generator=generator,
            )
            for c in range(0, b, cfg.rollout_batch)
        ], self.pad_id)
        histories = [list(h) for h in batch.histories for _ in range(cfg.group_size)]
        cpu = (getattr(rolls, k).cpu() for k in ("prompt_ids", "item_ids", "ranks", "target_ids"))
        return rolls, Rollouts(*cpu, histories)

    def validate(self, policy, examples) -> dict[str, float]:
        from rl4rec.genrec.evaluate import validation_metrics

        ld, c = self.loaded, self.cfg
        return validation_metrics(policy, ld.tokenizer, self.trie, ld.builder, examples, beams=c.eval_beams, batch_size=c.eval_batch_size, max_len=ld.cfg.max_len, ks=self.ks)

    def test(self, run_dir: Path) -> dict[str, Any]:
        from rl4rec.genrec.evaluate import comparison_table, evaluate_run

        c = self.cfg
        test = evaluate_run(run_dir, split="test", beams=c.test_beams, which="best", runs_dir=c.runs_dir, progress=False, threads=c.threads)
        out = {"test": {k: v for k, v in test["metrics"].items() if k != "popularity_groups"},
               "test_popularity_groups": test["metrics"].get("popularity_groups"), "baselines": test["baselines"]}
        sft_res = Path(self.loaded.run_dir) / "test_results.json"
        if sft_res.is_file():
            sft = json.loads(sft_res.read_text())
            if sft.get("test", {}).get("beams") == test["metrics"]["beams"]:
                out["sft_test"] = sft["test"]
                out["baselines"] = [{"model": "SFT (start)", "source": str(self.loaded.run_dir), "seeds": 1, **sft["test"]}, *out["baselines"]]
        out["table"] = comparison_table(out["test"], out["baselines"], name="GRPO (ours)")
        return out


class TextFamily:
    """Free text grounded by retrieval: the reward is the target's rank among all catalog items."""

    TASK = "seq_title2title"

    def __init__(self, cfg: TextGRPOConfig, loaded, device, policy):
        from rl4rec.genrec.retrieval import make_retrieval
        from rl4rec.genrec.sid.text import embed_items, make_encoder
        from rl4rec.genrec.textgen import make_generator

        self.cfg, self.loaded, self.device = cfg, loaded, device
        self.weights = {self.TASK: 1.0}
        _warn_untrained(loaded, self.weights)
        self.pad_id, self.lp_trie = loaded.tokenizer.pad_token_id, None
        catalog = loaded.dataset.catalog
        emb = embed_items(catalog, make_encoder(cfg.retrieval.encoder), cache_dir=Path(cfg.runs_dir) / ".cache")
        self.index = make_retrieval(cfg.retrieval, emb, encoder_factory=functools.partial(make_encoder, cfg.retrieval.encoder))
        kw = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature}
        if cfg.generation_backend == "vllm":
            kw["sync_every"] = cfg.vllm_sync_every
        self.sampler = make_generator(cfg.generation_backend, policy, loaded.tokenizer, **kw)
        self.greedy = make_generator("hf", policy, loaded.tokenizer, max_new_tokens=cfg.max_new_tokens)
        self.ks = reported_ks(cfg.ks, cfg.select_metric)

    def describe(self) -> str:
        return f"free text ({self.cfg.generation_backend}), retrieval={self.cfg.retrieval.backend}/{self.cfg.retrieval.encoder}"

    def prompt_pool(self):
        ld = self.loaded
        samples = ld.builder.seq_samples(self.TASK, ld.dataset.train)
        return samples, _encode(ld, samples, reserve=self.cfg.max_new_tokens), {self.TASK: len(samples)}

    def reward_context(self, cache_dir: Path) -> RewardContext:  # noqa: ARG002
        c = self.cfg
        return RewardContext(invalid_reward=c.invalid_reward, group_size=c.group_size, cutoff=c.reward_cutoff, mixed_weights=dict(c.mixed_weights),
                             aggregation=c.reward_aggregation)

    def rollouts(self, policy, batch, generator) -> tuple[RolloutBatch, Rollouts]:
        cfg, g = self.cfg, self.cfg.group_size
        self.sampler.sync(policy)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
        out = self.sampler.generate(batch.prompts, num_return=g, do_sample=True, seed=seed)
        targets = batch.targets.repeat_interleave(g)
        histories = [list(h) for h in batch.histories for _ in range(g)]
        excluded = histories if cfg.retrieval.exclude_history else None
        ranks, items = ground_texts(self.index, out.texts, targets, excluded)
        pids = batch.prompt_ids.repeat_interleave(g)
        within = torch.arange(g).repeat(len(batch.prompts))
        on_dev = (x.to(self.device) for x in (pids, items, items, within, targets, out.tokens, out.mask))
        rolls = RolloutBatch(*on_dev, g)  # free text has no SID: the grounded item stands in for sid_index
        return rolls, Rollouts(pids, items, within, targets, histories, target_ranks=ranks)

    def validate(self, policy, examples) -> dict[str, float]:
        from rl4rec.genrec.textgen import text_metrics

        self.greedy.sync(policy)
        ld = self.loaded
        return text_metrics(self.greedy, self.index, ld.builder, ld.tokenizer, examples, ks=self.ks, max_len=ld.cfg.max_len, batch_size=self.cfg.eval_batch_size)

    def test(self, run_dir: Path) -> dict[str, Any]:
        from rl4rec.genrec.evaluate import baseline_results, comparison_table
        from rl4rec.genrec.model import load_model_dir
        from rl4rec.genrec.textgen import HFGenerator, text_metrics

        ld, ds = self.loaded, self.loaded.dataset

        def measure(folder: Path) -> dict[str, float]:
            model, _, _ = load_model_dir(folder)
            gen = HFGenerator(model.to(self.device), ld.tokenizer, max_new_tokens=self.cfg.max_new_tokens)
            return text_metrics(gen, self.index, ld.builder, ld.tokenizer, ds.test, ks=self.ks, max_len=ld.cfg.max_len,
                                batch_size=self.cfg.eval_batch_size, prefix="", progress=self.cfg.progress)

        metrics = measure(Path(run_dir) / "model" / "best")
        start = measure(Path(ld.run_dir) / "model" / self.cfg.init_which)  # the start, measured the same way
        baselines = baseline_results(ds.name, ds.train_recipe, "test", len(ds.test), runs_dir=self.cfg.runs_dir)
        baselines = [{"model": "SFT free text (start)", "source": str(ld.run_dir), "seeds": 1, **start}, *baselines]
        out = {"test": metrics, "sft_test": start, "baselines": baselines,
               "grounding": f"greedy title -> {self.cfg.retrieval.encoder} embedding -> cosine rank over {self.index.num_items} items"}
        out["table"] = comparison_table(metrics, baselines, name="GRPO free text (ours)")
        return out


def make_family(cfg, loaded, device, policy):
    return TextFamily(cfg, loaded, device, policy) if isinstance(cfg, TextGRPOConfig) else SIDFamily(cfg, loaded, device)
