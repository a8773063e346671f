"""``rl4rec genrec grpo``: GRPO of an SFT-trained generative recommender (spec genrec.md §7).

    rl4rec genrec grpo --config configs/genrec/grpo_industrial.yaml init_from=<SFT run> seed=0

One step: take ``prompts_per_step`` prompts (each process its share; a group never straddles
processes) -> G completions each by constrained beam search or sampling -> registered rewards ->
advantages per prompt id over the gathered batch of all processes -> the policy's per-token
log-probs (prompt run once per group, :mod:`.logprobs`) and the reference model's -> the
GRPO/DAPO/GSPO loss, normalised by the global row or token count -> gradients summed over
processes -> clip, AdamW, schedule. Every ``eval_every`` steps a validation beam search; the best
model (the SFT model included, step 0) is kept and tested at the end.

Runs on :func:`rl4rec.training.fit` and :class:`rl4rec.devices.Devices` (accelerate's process
group, device placement and mixed precision). The model is
deliberately *not* wrapped in DDP: a loss here runs two forward passes through a shared prompt
cache before one backward, which DDP's one-forward-per-backward hooks do not allow; gradients are
summed explicitly once per optimizer step instead (:func:`rl4rec.devices.sum_gradients`), which
also makes micro-batch accumulation free of extra all-reduces. With 1 or N processes the update
is the same (tested).

Run folder: ``init_run.json`` (the SFT run), ``model/best`` and ``model/last`` (loadable like an
SFT run's, so ``rl4rec genrec eval`` works on it), ``checkpoints/last.pt`` (policy, reference,
optimizer, scheduler; resume), ``metrics.jsonl`` and ``test_results.json``.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl4rec.config import ConfigError
from rl4rec.devices import mean_over_processes
from rl4rec.genrec.grpo.config import GRPOCommon
from rl4rec.genrec.grpo.update import PromptBatch, grpo_update
from rl4rec.genrec.sft import mixture_order
from rl4rec.training import Task, fit, format_run

log = logging.getLogger(__name__)

__all__ = ["GRPOTask", "train_grpo", "sync_reference"]


@torch.no_grad()
def sync_reference(ref, policy, alpha: float) -> None:
    """TR-DPO soft update ``ref <- alpha * policy + (1 - alpha) * ref``."""
    for r, p in zip(ref.parameters(), policy.parameters(), strict=True):
        r.mul_(1 - alpha).add_(p.detach(), alpha=alpha)


class GRPOTask(Task):
    """GRPO from an SFT run: one step = ``prompts_per_step`` prompts (each process its share; a
    group never straddles processes), G completions each, one (or ``num_iterations``) updates."""

    def __init__(self, cfg: GRPOCommon, run, dev):
        from transformers import get_scheduler

        from rl4rec.genrec.artifacts import load_sft_run
        from rl4rec.genrec.evaluate import valid_subset
        from rl4rec.genrec.grpo.families import make_family

        if cfg.prompts_per_step % dev.world:
            raise ConfigError(f"prompts_per_step={cfg.prompts_per_step} must be divisible by the {dev.world} processes (groups never straddle processes)")
        self.cfg, self.run, self.dev = cfg, run, dev
        self.per_proc = cfg.prompts_per_step // dev.world
        self.loaded = loaded = load_sft_run(cfg.init_from, cfg.init_which, cfg.runs_dir)
        self.tok, self.ds = loaded.tokenizer, loaded.dataset
        if dev.is_main:
            run.layout.write_init_run(loaded.run_dir, cfg.init_which)
        self.policy = policy = loaded.model.to(dev.device)
        policy.train().requires_grad_(True)
        self.use_ref = cfg.beta > 0
        self.ref = copy.deepcopy(policy).eval().requires_grad_(False) if self.use_ref else None
        self.STATE = ("policy", "opt", "sched", "completions", "tokens") + (("ref",) if self.use_ref else ())
        self.family = family = make_family(cfg, loaded, dev.device, policy)
        self.meta = {**loaded.meta, "grpo_from": str(loaded.run_dir), "grpo": family.describe(), "rewards": dict(cfg.rewards)}
        self.samples, self.prompts, self.sizes = family.prompt_pool()
        mixture = list(self.sizes.values()), [family.weights[t] for t in self.sizes]
        # the prompt order of one epoch, a pure function of (seed, epoch) built once per epoch: each task
        # contributes weight x size prompts (fractions: a fresh random subset each epoch), shuffled
        self.order = functools.lru_cache(maxsize=1)(
            lambda epoch: mixture_order(np.random.default_rng([cfg.seed, epoch, 11]), *mixture)
        )
        self.per_epoch = len(self.order(0))
        self.steps_per_epoch = max(1, self.per_epoch // cfg.prompts_per_step)
        self.total_steps = total = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.eval_every = cfg.eval_every or max(1, math.ceil(total / 10))
        self.name, self.select_key = f"grpo {self.ds.name}", f"valid/{cfg.select_metric}"
        self.ctx = family.reward_context(Path(cfg.runs_dir) / ".cache")
        self.valid = valid_subset(self.ds.valid, cfg.eval_rows)
        log.info("GRPO on %s: %s prompts/epoch (%s), %d steps of %d prompts x G=%d on %d process(es), %s, rewards=%s",
                 self.ds.name, self.per_epoch, self.sizes, total, cfg.prompts_per_step, cfg.group_size, dev.world, family.describe(), dict(cfg.rewards))
        self.params = list(policy.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched_name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[cfg.schedule]
        self.sched = get_scheduler(sched_name, self.opt, num_warmup_steps=cfg.warmup(total), num_training_steps=total)
        self.completions, self.tokens = 0, 0

    def train_step(self, step: int) -> dict[str, float]:
        cfg, dev, per_proc = self.cfg, self.dev, self.per_proc
        self.policy.train()
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        glob = self.order(epoch)[pos * cfg.prompts_per_step : (pos + 1) * cfg.prompts_per_step]
        mine = glob[dev.rank * per_proc : (dev.rank + 1) * per_proc]
        pids = torch.arange(dev.rank * per_proc, dev.rank * per_proc + len(mine)) + (step - 1) * cfg.prompts_per_step
        targets = torch.as_tensor([self.samples[i].target_item_id for i in mine])
        gen = torch.Generator(device=dev.device).manual_seed(int(cfg.seed) * 1_000_003 + step * 101 + dev.rank)
        batch = PromptBatch([self.prompts[i] for i in mine], targets, pids, [tuple(self.samples[i].history) for i in mine])
        t0 = time.perf_counter()
        metrics = grpo_update(cfg, batch, self.family, policy=self.policy, ref=self.ref, optimizer=self.opt, params=self.params, ctx=self.ctx,
                              devices=dev, generator=gen)
        self.sched.step()
        if self.use_ref and cfg.sync_ref and step % cfg.ref_sync_every == 0:
            sync_reference(self.ref, self.policy, cfg.ref_alpha)
        n_tokens_global = metrics.pop("n_tokens_global")
        step_s = time.perf_counter() - t0
        n_completions = len(mine) * cfg.group_size * dev.world
        self.completions += n_completions
        self.tokens += int(n_tokens_global)
        metrics = mean_over_processes(metrics, dev.device)
        metrics.update({
            "train/lr": self.sched.get_last_lr()[0],
            "train/epoch": step / self.steps_per_epoch,
            "perf/completions_per_s": n_completions / step_s,
            "perf/tokens_per_s": n_tokens_global / step_s,
        })
        log.info("step %d reward %.4f ± %.4f kl %.5f loss %.5f zero-adv groups %.2f hit groups %.2f (%.2fs)", step, metrics["train/reward"],
                  metrics["train/reward_std"], metrics["train/kl"], metrics["train/loss"], metrics["train/zero_adv_groups"], metrics["train/group_hit_rate"], step_s)
        return metrics

    def validate(self, step: int) -> dict[str, float]:
        return self.family.validate(self.policy, self.valid)

    def save_model(self, folder, info: dict[str, Any]) -> None:
        from rl4rec.genrec.model import save_model_dir

        save_model_dir(self.policy, self.tok, folder, {**self.meta, **info})

    def summary(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "dataset": self.ds.name,
            "train_recipe": self.ds.train_recipe,
            "init_from": str(self.loaded.run_dir),
            "rollout": getattr(cfg, "rollout", "free text"),
            "rewards": dict(cfg.rewards),
            "group_size": cfg.group_size,
            "prompts_per_step": cfg.prompts_per_step,
            "processes": self.dev.world,
            "tasks": self.sizes,
            "completions": int(self.completions),
        }

    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        out = self.family.test(self.run.dir)
        self.log_test(out["test"], int(loop["last_step"]))
        return out


def train_grpo(cfg: GRPOCommon) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    if not cfg.init_from:
        raise ConfigError("init_from: name the SFT run to start from (rl4rec genrec sft ...), or use --smoke")
    return fit(cfg, lambda run, dev: GRPOTask(cfg, run, dev), key_metric=f"valid/{cfg.select_metric}")


def format_results(result: dict[str, Any]) -> str:
    return format_run(f"GRPO on {result['dataset']} from {result['init_from']}: {result['steps']} steps, rollout={result['rollout']}, "
                      f"rewards={result['rewards']}, best step {result['best_step']}, train {result['train_s']:.0f}s, wall {result['wall_s']:.0f}s", result)
