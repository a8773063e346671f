"""``rl4rec genrec grpo``: GRPO of an SFT-trained generative recommender (spec genrec.md §7).

    rl4rec genrec grpo --config configs/genrec/grpo_industrial.yaml init_from=<SFT run> seed=0

One step: take ``prompts_per_step`` prompts (each process its share; a group never straddles
processes) -> G completions each by constrained beam search or sampling -> registered rewards ->
advantages per prompt id over the gathered batch of all processes -> the policy's per-token
log-probs (prompt run once per group, :mod:`.logprobs`) and the reference model's -> the
GRPO/DAPO/GSPO loss, normalised by the global row or token count -> gradients summed over
processes -> clip, AdamW, schedule. Every ``eval_every`` steps a validation beam search; the best
model (the SFT model included, step 0) is kept and tested at the end.

Built on ``accelerate`` for the process group, device placement and mixed precision. The model is
deliberately *not* wrapped in DDP: a loss here runs two forward passes through a shared prompt
cache before one backward, which DDP's one-forward-per-backward hooks do not allow; gradients are
summed explicitly once per optimizer step instead (:func:`.distributed.sum_gradients`), which
also makes micro-batch accumulation free of extra all-reduces. With 1 or N processes the update
is the same (tested).

Run folder: ``init_run.json`` (the SFT run), ``model/best`` and ``model/last`` (loadable like an
SFT run's, so ``rl4rec genrec eval`` works on it), ``checkpoints/last.pt`` (policy, reference,
optimizer, scheduler; resume), ``metrics.jsonl`` and ``test_results.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl4rec.config import ConfigError
from rl4rec.genrec.grpo.config import GRPOCommon
from rl4rec.genrec.grpo.update import PromptBatch, grpo_update

log = logging.getLogger(__name__)

__all__ = ["train_grpo", "epoch_order", "sync_reference"]


# --------------------------------------------------------------------------- data


def epoch_order(seed: int, epoch: int, task_of: np.ndarray, weights: dict[str, float], tasks: list[str]) -> np.ndarray:
    """The prompt order of one epoch, a pure function of (seed, epoch): each task contributes
    ``weight x size`` prompts (fractions: a fresh random subset each epoch), shuffled."""
    rng = np.random.default_rng([seed, epoch, 11])
    parts = []
    for t, name in enumerate(tasks):
        idx = np.flatnonzero(task_of == t)
        w = weights[name]
        parts.extend([idx] * int(w))
        if w - int(w) > 0:
            parts.append(rng.choice(idx, int(round((w - int(w)) * idx.size)), replace=False))
    return rng.permutation(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def sync_reference(ref, policy, alpha: float) -> None:
    """TR-DPO soft update ``ref <- alpha * policy + (1 - alpha) * ref``."""
    for r, p in zip(ref.parameters(), policy.parameters(), strict=True):
        r.mul_(1 - alpha).add_(p.detach(), alpha=alpha)


def _mean_over_processes(metrics: dict[str, float], device) -> dict[str, float]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return metrics
    keys = sorted(metrics)
    vec = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(vec)
    return {k: float(v) / dist.get_world_size() for k, v in zip(keys, vec.tolist(), strict=True)}


# --------------------------------------------------------------------------- the run


class _FollowerRun:
    """What a non-main process sees of the run: the resume state, nothing written."""

    def __init__(self, cfg: GRPOCommon, run_dir: Path):
        from rl4rec.runs import load_checkpoint, set_rng_state
        from rl4rec.seeding import apply_threads, seed_everything

        self.dir, self.cfg, self.resume_state, self.start_step = run_dir, cfg, None, 0
        apply_threads(cfg.threads)
        seed_everything(cfg.seed)
        last = run_dir / "checkpoints" / "last.pt"
        if cfg.resume and last.exists():
            self.resume_state = load_checkpoint(last)
            self.start_step = int(self.resume_state["step"])
            set_rng_state(self.resume_state["rng"])
        self._stop = False

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        from rl4rec.runs import StopRequested

        return exc[0] is StopRequested

    def log_metrics(self, *a, **k) -> None:
        pass

    def save_checkpoint(self, *a, **k) -> None:
        pass

    def write_result(self, *a, **k) -> None:
        pass

    def check_stop(self) -> None:
        from rl4rec.runs import StopRequested

        if self._stop:
            raise StopRequested()


def _any_process(flag: bool, device) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t)
    return bool(t.item())


def train_grpo(cfg: GRPOCommon) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    from accelerate import Accelerator
    from transformers import get_scheduler

    from rl4rec.genrec.evaluate import valid_subset
    from rl4rec.genrec.grpo.families import make_family
    from rl4rec.genrec.model import save_model_dir
    from rl4rec.genrec.artifacts import load_sft_run
    from rl4rec.naming import run_name
    from rl4rec.progress import track
    from rl4rec.runs import Run, atomic_write_text, set_rng_state

    if not cfg.init_from:
        raise ConfigError("init_from: name the SFT run to start from (rl4rec genrec sft ...), or use --smoke")
    t_start = time.perf_counter()
    # cpu=True where no GPU is visible: accelerate only sets up a multi-process CPU (gloo) group then
    acc = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)
    world, rank = acc.num_processes, acc.process_index
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world:  # never let N launched processes each train (and write) as if alone
        raise RuntimeError(f"launched as {launched} processes but accelerate set up {world}; check the launcher and the device setup")
    if cfg.prompts_per_step % world:
        raise ConfigError(f"prompts_per_step={cfg.prompts_per_step} must be divisible by the {world} processes (groups never straddle processes)")
    per_proc = cfg.prompts_per_step // world
    run_dir = Path(cfg.runs_dir) / cfg.experiment / (cfg.run_name or run_name(cfg))
    opened = Run(cfg, key_metric=f"valid/{cfg.select_metric}") if acc.is_main_process else None
    acc.wait_for_everyone()
    with opened if opened is not None else _FollowerRun(cfg, run_dir) as run:
        loaded = load_sft_run(cfg.init_from, cfg.init_which, cfg.runs_dir)
        tok, ds = loaded.tokenizer, loaded.dataset
        if acc.is_main_process:
            atomic_write_text(run.dir / "init_run.json", json.dumps({"run_dir": str(Path(loaded.run_dir).resolve()), "which": cfg.init_which}))
        device = acc.device
        policy = loaded.model.to(device)
        policy.train()
        for p in policy.parameters():
            p.requires_grad_(True)
        use_ref = cfg.beta > 0
        ref = copy.deepcopy(policy).eval().requires_grad_(False) if use_ref else None
        family = make_family(cfg, loaded, device, policy)
        meta = {**loaded.meta, "grpo_from": str(loaded.run_dir), "grpo": family.describe(), "rewards": dict(cfg.rewards)}

        samples, prompts, sizes = family.prompt_pool()
        tasks = list(sizes)
        task_of = np.repeat(np.arange(len(tasks)), [sizes[t] for t in tasks])
        weights = family.task_weights()
        per_epoch = len(epoch_order(cfg.seed, 0, task_of, weights, tasks))
        steps_per_epoch = max(1, per_epoch // cfg.prompts_per_step)
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        eval_every = cfg.eval_every or max(1, math.ceil(total / 10))
        ctx = family.reward_context(Path(cfg.runs_dir) / ".cache")
        valid = valid_subset(ds.valid, cfg.eval_rows)
        log.info("GRPO on %s: %s prompts/epoch (%s), %d steps of %d prompts x G=%d on %d process(es), %s, rewards=%s",
                 ds.name, per_epoch, sizes, total, cfg.prompts_per_step, cfg.group_size, world, family.describe(), dict(cfg.rewards))

        params = [p for p in policy.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched_name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[cfg.schedule]
        sched = get_scheduler(sched_name, opt, num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
        state: dict[str, Any] = {"best": -math.inf, "best_step": 0, "train_s": 0.0, "completions": 0, "tokens": 0, "start_valid": None}
        if run.resume_state is not None:
            rs = run.resume_state
            policy.load_state_dict(rs["model"])
            if use_ref:
                ref.load_state_dict(rs["ref_model"])
            opt.load_state_dict(rs["optimizer"])
            sched.load_state_dict(rs["scheduler"])
            state.update({k: rs[k] for k in state})
            set_rng_state(rs["rng"])

        def ckpt() -> dict[str, Any]:
            out = {"model": policy.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **state}
            if use_ref:
                out["ref_model"] = ref.state_dict()
            return out

        def validate() -> dict[str, float]:
            if not acc.is_main_process:
                return {}
            return family.validate(policy, valid)

        def save(step: int, metrics: dict | None, is_best: bool, keep: bool = False) -> None:
            run.save_checkpoint(ckpt(), step, keep=keep, best=is_best)
            if acc.is_main_process:
                save_model_dir(policy, tok, run.dir / "model" / "last", {**meta, "step": step})
                if is_best:
                    save_model_dir(policy, tok, run.dir / "model" / "best", {**meta, "step": step, "valid": metrics})
            acc.wait_for_everyone()

        select_key = f"valid/{cfg.select_metric}"
        if run.start_step == 0 and cfg.eval_at_start:
            m0 = validate()
            if acc.is_main_process:
                state.update(best=m0[select_key], best_step=0, start_valid=m0)
                run.log_metrics(m0, 0)
                log.info("step 0 (SFT model) valid %s", " ".join(f"{k[6:]}={v:.4f}" for k, v in m0.items() if "@" in k))
            save(0, m0, is_best=True)

        last_step = run.start_step
        orders: dict[int, np.ndarray] = {}
        for step in track(range(run.start_step + 1, total + 1), desc=f"grpo {ds.name}", enabled=cfg.progress and acc.is_main_process, unit="step"):
            if _any_process(run.stop_requested, device):  # SIGTERM on any process: all stop after a checkpoint
                save(step - 1, None, is_best=False)
                run._stop = True
                run.check_stop()
            t_step, last_step = time.perf_counter(), step
            epoch, pos = divmod(step - 1, steps_per_epoch)
            if epoch not in orders:
                orders = {epoch: epoch_order(cfg.seed, epoch, task_of, weights, tasks)}
            glob = orders[epoch][pos * cfg.prompts_per_step : (pos + 1) * cfg.prompts_per_step]
            mine = glob[rank * per_proc : (rank + 1) * per_proc]
            pids = torch.arange(rank * per_proc, rank * per_proc + len(mine)) + (step - 1) * cfg.prompts_per_step
            targets = torch.as_tensor([samples[i].target_item_id for i in mine])
            my_prompts = [prompts[i] for i in mine]

            gen = torch.Generator(device=device).manual_seed(int(cfg.seed) * 1_000_003 + step * 101 + rank)
            batch = PromptBatch(my_prompts, targets, pids, [tuple(samples[i].history) for i in mine])
            metrics = grpo_update(cfg, batch, family, policy=policy, ref=ref, optimizer=opt, params=params, ctx=ctx, device=device,
                                  autocast=acc.autocast, generator=gen)
            sched.step()
            if use_ref and cfg.sync_ref and step % cfg.ref_sync_every == 0:
                sync_reference(ref, policy, cfg.ref_alpha)
            n_tokens_global = metrics.pop("n_tokens_global")
            g = cfg.group_size
            step_s = time.perf_counter() - t_step
            state["train_s"] += step_s
            state["completions"] += len(mine) * g * world
            state["tokens"] += int(n_tokens_global)
            metrics = _mean_over_processes(metrics, device)
            metrics.update({
                "train/lr": sched.get_last_lr()[0],
                "train/epoch": step / steps_per_epoch,
                "perf/step_s": step_s,
                "perf/completions_per_s": len(mine) * g * world / step_s,
                "perf/tokens_per_s": n_tokens_global / step_s,
            })
            if step % cfg.tracking.log_every == 0:
                run.log_metrics(metrics, step)
                log.info("step %d/%d reward %.4f ± %.4f kl %.5f loss %.5f zero-adv groups %.2f hit groups %.2f (%.2fs)",
                         step, total, metrics["train/reward"], metrics["train/reward_std"], metrics["train/kl"], metrics["train/loss"],
                         metrics["train/zero_adv_groups"], metrics["train/group_hit_rate"], step_s)

            is_best, vm = False, None
            if step % eval_every == 0 or step == total:
                vm = validate()
                if acc.is_main_process:
                    if vm[select_key] > state["best"]:
                        state.update(best=vm[select_key], best_step=step)
                        is_best = True
                    run.log_metrics(vm, step)
                    log.info("step %d/%d valid %s", step, total, " ".join(f"{k[6:]}={v:.4f}" for k, v in vm.items() if "@" in k))
                is_best = _any_process(is_best, device)
            keep = bool(cfg.keep_every) and step % cfg.keep_every == 0
            if vm is not None or keep or cfg.stop_at_step == step:
                save(step, vm, is_best, keep)
            if cfg.stop_at_step == step and step < total:
                run._stop = True  # the test hook: what the SIGTERM handler does
                run.check_stop()

        result: dict[str, Any] = {
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "seed": cfg.seed,
            "init_from": str(loaded.run_dir),
            "rollout": getattr(cfg, "rollout", "free text"),
            "rewards": dict(cfg.rewards),
            "group_size": cfg.group_size,
            "prompts_per_step": cfg.prompts_per_step,
            "processes": world,
            "tasks": sizes,
            "steps": last_step,
            "steps_planned": total,
            "best_step": int(state["best_step"]),
            "best_valid": {cfg.select_metric: state["best"]},
            "start_valid": state["start_valid"],
            "train_s": float(state["train_s"]),
            "completions": int(state["completions"]),
            "run_dir": str(run.dir),
        }
        if cfg.test_at_end and acc.is_main_process:
            result.update(family.test(run.dir))
            run.log_metrics({f"test/{k}": v for k, v in result["test"].items() if "@" in k and not k.endswith("ci95")}, last_step)
        result["wall_s"] = time.perf_counter() - t_start
        run.write_result("test_results.json", result)
        acc.wait_for_everyone()
        return result
