"""``rl4rec genrec latent-grpo``: noise-GRPO of the latent module, LM frozen (spec §4).

    rl4rec genrec latent-grpo configs/genrec/latent_grpo_faithful.yaml init_from=<latent SFT run>
    rl4rec genrec latent-grpo configs/genrec/latent_grpo_corrected.yaml init_from=<latent SFT run>

Each prompt's group is ``G`` copies of its latent ``z``: one clean, ``G - 1`` with Gaussian noise
(``noise_std`` per dimension, or that multiple of RMS(z) with ``noise_relative``). The
"completion" is always the true title, scored by teacher forcing (no text is sampled). Reward:
minus the perplexity of the title (``neg_ppl``, faithful) or its mean log-likelihood
(``neg_nll``, bounded). Only the latent module learns.

Cost: the LM is frozen, so each prompt runs **once** (no gradient) and its KV cache is repeated
for the ``G`` copies, which run as short continuations ``[z + eps_g, title]`` (the release: four
full passes over 8 identical copies per micro-step). One forward gives both the rewards (detached)
and the loss; with more prompts per process than ``micro_prompts`` the noise is stored and the
loss recomputed chunk by chunk (spec §4.2).

Estimators (``estimator``):
- ``weighted_likelihood`` (faithful §4.5): ``L = -sum_g A_g sum_t log p(y_t | z + eps_g) / (G L)``
  per prompt — a pathwise, advantage-weighted likelihood, not a policy gradient;
- ``gaussian_pg``: the score function of the Gaussian policy ``N(z, s^2)``,
  ``L = -mean_g A_g (eps_g . z) / s^2`` (gradient ``A_g eps_g / s^2 dz/dtheta``);
- ``pathwise``: ``L = -mean_g r(z + eps_g)``, the reward differentiated through ``z``.

Process count: each process scores the prompts at positions ``rank::world`` of the step's list,
rewards are all-gathered into the ``(P, G)`` matrix in global order before the advantages (blocks of
``baseline_prompts`` for the faithful baseline), the loss is divided by the global prompt count
and gradients are summed: 1 and N processes make the same update.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rl4rec.config import ConfigError, field
from rl4rec.devices import all_gather_rows, sum_gradients
from rl4rec.genrec.latent.advantages import latent_advantages
from rl4rec.genrec.latent.sft import LatentEvalConfig, LatentTask
from rl4rec.training import TrainingConfig, default, fit

__all__ = ["LatentRLConfig", "LatentGRPOConfig", "train_latent_grpo", "grpo_step", "group_rewards", "estimator_loss", "score_group", "make_noise"]


@dataclass(frozen=True)
class LatentRLConfig:
    """The group, reward, advantage and estimator (spec §4.10)."""

    group_size: int = field(8, "latent copies per prompt (1 clean + G-1 noisy)", ge=2, short="G")
    noise_std: float = field(1.5, "Gaussian noise std per dimension (absolute; relative to RMS(z) with noise_relative)", gt=0.0, short="sigma")
    noise_relative: bool = field(False, "noise_std is a multiple of each latent's RMS")
    clean_anchor: bool = field(True, "copy 0 carries no noise")
    reward: Literal["neg_ppl", "neg_nll"] = field("neg_ppl", "neg_ppl: minus the title's perplexity (faithful, unbounded); neg_nll: its mean log-likelihood")
    advantage: Literal["batch_clean_mean_l2", "group_clean", "group_zscore", "faithful_group_mix"] = field(
        "batch_clean_mean_l2", "faithful cross-prompt baseline, or per-prompt: r - r_clean, z-score; faithful_group_mix (§4.8)"
    )
    estimator: Literal["weighted_likelihood", "gaussian_pg", "pathwise"] = field("weighted_likelihood", "faithful weighted likelihood, Gaussian score function, or pathwise reward gradient")
    baseline_prompts: int = field(2, "prompts sharing the faithful baseline (the release: its 2 GPUs)", ge=1)
    hgpo_weight: float = field(0.8, "faithful_group_mix: weight of the z-score part", ge=0.0, le=1.0)


@dataclass(frozen=True)
class LatentGRPOConfig(TrainingConfig):
    """Noise-GRPO of the latent module (``rl4rec genrec latent-grpo``)."""

    NAME_KEYS = ("latent_rl.advantage", "latent_rl.estimator")
    NAME_EXCLUDE = (*TrainingConfig.NAME_EXCLUDE, "init_from", "micro_prompts", "stop_at_step", "eval.batch_size")

    experiment: str = field("genrec-latent-grpo", "experiment name")
    init_from: str = field("", "the latent SFT run: folder, EXPERIMENT/NAME or a unique run name under runs_dir", short="")
    init_which: Literal["best", "last"] = field("best", "which saved model of the SFT run")
    latent_rl: LatentRLConfig = field(default_factory=LatentRLConfig, help="group, reward, advantage, estimator")
    sample: int = field(0, "training prompts: a random subset of this many train rows (0 = all)", ge=0)
    prompts_per_step: int = field(32, "prompts per optimizer step over all processes (the release: 32)", ge=1, short="P")
    micro_prompts: int = field(64, "prompts per forward chunk on a process (memory)", ge=1)
    epochs: int = field(1, "passes over the training prompts", ge=1)
    max_steps: int = field(0, "stop after this many optimizer steps (0 = epochs decide)", ge=0)
    lr: float = default(TrainingConfig, "lr", 5e-5, "AdamW learning rate of the latent module (kept in fp32)")
    weight_decay: float = default(TrainingConfig, "weight_decay", 0.0)
    warmup_steps: int = default(TrainingConfig, "warmup_steps", 10, "linear warm-up steps (the release: 200, longer than its 32-step runs)")
    schedule: Literal["linear", "cosine", "constant"] = default(TrainingConfig, "schedule", "cosine")
    grad_clip: float = default(TrainingConfig, "grad_clip", 1.0)
    eval_every: int = default(TrainingConfig, "eval_every", 0, "validate every N steps (0 = at the end)")
    eval_at_start: bool = default(TrainingConfig, "eval_at_start", True)
    select_metric: str = default(TrainingConfig, "select_metric", "ndcg@10", "validation metric selecting the best model")
    eval: LatentEvalConfig = field(default_factory=LatentEvalConfig, help="validation / test decoding")
    test_at_end: bool = default(TrainingConfig, "test_at_end", True)

    def check(self) -> None:
        super().check()
        rl = self.latent_rl
        if rl.advantage in ("batch_clean_mean_l2", "group_clean", "faithful_group_mix") and not rl.clean_anchor:
            raise ConfigError(f"latent_rl.advantage={rl.advantage} needs the clean copy (latent_rl.clean_anchor=true)")


# --------------------------------------------------------------------------- one group


def group_rewards(logp: torch.Tensor, tmask: torch.Tensor, kind: str) -> torch.Tensor:
    """Per row: ``-exp(-mean_t log p)`` (neg_ppl) or ``mean_t log p`` (neg_nll) over the title
    tokens (EOS included). Differentiable (the pathwise estimator uses it)."""
    mean_lp = (logp * tmask).sum(-1) / tmask.sum(-1)
    return -torch.exp(-mean_lp) if kind == "neg_ppl" else mean_lp


def make_noise(z: torch.Tensor, rl: LatentRLConfig, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise ``(P, G, d)``, the std used per prompt ``(P,)``) from standard normal draws ``unit``;
    copy 0 clean with ``clean_anchor``."""
    std = torch.full((z.shape[0],), rl.noise_std, device=z.device)
    if rl.noise_relative:
        std = rl.noise_std * z.detach().pow(2).mean(-1).sqrt()
    eps = unit.to(z.device) * std[:, None, None]
    if rl.clean_anchor:
        eps[:, 0] = 0
    return eps, std


def score_group(llm, ids, mask, targets, noise, *, with_grad: bool):
    """Teacher-forced title log-probs ``(P, G, L)`` under ``z + eps_g``, with ``z`` (``(P, d)``) and
    ``eps`` (``(P, G, d)``). The prompts run once without gradient, their KV cache is repeated ``G``
    times, and the copies run as ``[z + eps_g, title]`` continuations. ``noise`` is the stored
    ``eps`` or a function ``z -> eps`` (drawn once, on the first scoring)."""
    with torch.no_grad():
        hidden, cache = llm.prefill(ids, mask)
    with torch.set_grad_enabled(with_grad):
        z = llm.latent(hidden, mask)
        eps = noise(z) if callable(noise) else noise
        p, g, _ = eps.shape
        zg = (z[:, None] + eps).reshape(p * g, -1)
        cache.batch_repeat_interleave(g)
        tg = targets.repeat_interleave(g, 0)
        embeds = torch.cat([zg[:, None], llm.embed(tg[:, :-1]).float()], 1)
        h, _ = llm.extend(embeds, cache, mask.repeat_interleave(g, 0), mask.sum(-1).repeat_interleave(g, 0))
        logp = llm.head(h).float().log_softmax(-1).gather(-1, tg[..., None]).squeeze(-1)
    return logp.view(p, g, -1), z, eps


def estimator_loss(kind: str, logp: torch.Tensor, tmask: torch.Tensor, adv: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, std: torch.Tensor, reward: str) -> torch.Tensor:
    """The summed per-prompt loss of a chunk (divide by the global prompt count).

    ``logp`` ``(P, G, L)``, ``tmask`` ``(P, L)``, ``adv`` ``(P, G)``, ``z`` ``(P, d)``,
    ``eps`` ``(P, G, d)``, ``std`` ``(P,)``."""
    g = logp.shape[1]
    if kind == "weighted_likelihood":
        tok = (logp * tmask[:, None]).sum(-1)  # (P, G)
        return -((adv * tok).sum(1) / (g * tmask.sum(-1))).sum()
    if kind == "gaussian_pg":
        score = (eps * z[:, None]).sum(-1) / std[:, None].pow(2)  # d/dz of log N(z + eps; z, s^2) . z
        return -(adv * score).sum(1).div(g).sum()
    if kind == "pathwise":
        r = group_rewards(logp, tmask[:, None].expand_as(logp), reward)
        return -r.mean(1).sum()
    raise ValueError(f"unknown estimator {kind!r}")


# --------------------------------------------------------------------------- the run


class LatentGRPOTask(LatentTask):
    """The latent module trained by noise-GRPO; the LM stays frozen (and in eval mode)."""

    STATE = ("latent", "opt", "sched", "noise_gen")

    def __init__(self, cfg: LatentGRPOConfig, run, dev):
        from rl4rec.genrec.latent.model import load_latent_model
        from rl4rec.genrec.latent.sft import LatentSFTConfig, load_latent_data
        from rl4rec.runs import RunDir, config_of, find_run

        self.cfg, self.run, self.dev, self.rl = cfg, run, dev, cfg.latent_rl
        self.sft_dir = sft_dir = find_run(Path(cfg.runs_dir), cfg.init_from)
        sft_cfg = config_of(LatentSFTConfig, sft_dir)
        if sft_cfg.latent.num_latents != 1:
            raise ConfigError(f"noise-GRPO perturbs one latent vector; the SFT run {sft_dir.name} has num_latents={sft_cfg.latent.num_latents}")
        if dev.is_main:
            run.layout.write_init_run(sft_dir, cfg.init_which)
        self.data = data = load_latent_data(sft_cfg)
        ds = data.ds
        self.llm, self.tok, meta = load_latent_model(RunDir(sft_dir).model(cfg.init_which))
        self.llm.to(dev.device)
        self.llm.lm.requires_grad_(False)
        self.encode_rows()
        self.steps_per_epoch = max(1, len(self.train_rows) // cfg.prompts_per_step)  # the last partial step is dropped
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.eval_every = cfg.eval_every or self.total_steps
        self.name, self.select_key = f"latent-grpo {ds.name}", f"valid/{cfg.select_metric}"
        self.latent = self.llm.latent  # what trains, and what a checkpoint holds
        self.make_optimizer(list(self.latent.parameters()))
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 17)
        self.meta = {**meta, "grpo": {"init_from": str(sft_dir), **asdict(self.rl)}}

    def train_step(self, step: int) -> dict[str, float]:
        cfg, dev = self.cfg, self.dev
        self.llm.eval()  # dropout off: rewards and loss must see the same function
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        order = np.random.default_rng([cfg.seed, epoch, 11]).permutation(len(self.train_rows))
        step_rows = order[pos * cfg.prompts_per_step : (pos + 1) * cfg.prompts_per_step]
        mine = np.arange(len(step_rows))[dev.rank :: dev.world]  # positions in the step's global order
        metrics = grpo_step(self.llm, self.rl, cfg, step_rows, mine, self.prompts, self.targets, self.tok.pad_token_id, dev.device,
                            self.noise_gen, self.opt, self.params, all_gather_rows, sum_gradients)
        self.sched.step()
        return {**metrics, "train/lr": self.sched.get_last_lr()[0]}

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.data.ds.name,
            "init_from": str(self.sft_dir),
            "latent_rl": asdict(self.rl),
            "prompts": len(self.train_rows),
        }


def train_latent_grpo(cfg: LatentGRPOConfig) -> dict[str, Any] | None:
    """Train the latent module with noise-GRPO; returns the results (``None`` when stopped)."""
    if not cfg.init_from:
        raise ConfigError("init_from: name the latent SFT run to start from (rl4rec genrec latent-sft ...)")
    return fit(cfg, lambda run, dev: LatentGRPOTask(cfg, run, dev), key_metric=f"valid/{cfg.select_metric}")


def grpo_step(llm, rl: LatentRLConfig, cfg: LatentGRPOConfig, step_rows, mine, prompts, targets, pad_id, device, noise_gen, opt, params, gather, reduce_grads) -> dict[str, float]:
    """One optimizer step: score this process's prompts, gather rewards, advantages, loss, update."""
    from rl4rec.genrec.latent.sft import collate

    chunks = [mine[i : i + cfg.micro_prompts] for i in range(0, len(mine), cfg.micro_prompts)]
    one_pass = len(chunks) == 1  # keep the graph: rewards and loss from one forward
    # every process draws the noise of the whole step and keeps its rows: the same noise per
    # prompt whatever the process count
    unit = torch.randn(len(step_rows), rl.group_size, llm.latent.hidden_size, generator=noise_gen)
    kept, rewards = [], []
    for ch in chunks:
        ids, mask, tg, tm = collate([prompts[step_rows[i]] for i in ch], [targets[step_rows[i]] for i in ch], pad_id, device)
        stds = []

        def draw(z, stds=stds, ch=ch):
            eps, std = make_noise(z, rl, unit[torch.as_tensor(ch)])
            stds.append(std)
            return eps

        logp, z, eps = score_group(llm, ids, mask, tg, draw, with_grad=one_pass)
        tmf = tm.float()
        rewards.append(group_rewards(logp.detach(), tmf[:, None].expand_as(logp), rl.reward))
        kept.append([ids, mask, tg, tmf, eps, stds[0], logp if one_pass else None, z if one_pass else None])
    local = torch.cat(rewards) if rewards else torch.zeros(0, rl.group_size, device=device)
    pos = torch.as_tensor(mine, device=device, dtype=torch.long)
    all_r, _ = gather(local)
    all_pos, _ = gather(pos)
    full = torch.empty_like(all_r)
    full[all_pos] = all_r  # rows in the step's global prompt order, whatever the process count
    adv_full = latent_advantages(full, rl.advantage, baseline_prompts=rl.baseline_prompts, hgpo_weight=rl.hgpo_weight, clean_anchor=rl.clean_anchor)
    adv = adv_full[pos]
    n_global = full.shape[0]
    opt.zero_grad(set_to_none=True)
    offset = 0
    for ids, mask, tg, tmf, eps, std, logp, z in kept:
        n = ids.shape[0]
        if logp is None:  # several chunks: recompute with gradient, the same noise
            logp, z, _ = score_group(llm, ids, mask, tg, eps, with_grad=True)
        loss = estimator_loss(rl.estimator, logp, tmf, adv[offset : offset + n], z, eps, std, rl.reward) / n_global
        loss.backward()
        offset += n
    reduce_grads(params)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else torch.zeros(())
    opt.step()
    return {
        "train/reward_mean": float(full.mean()),
        "train/reward_clean": float(full[:, 0].mean()),
        "train/reward_noisy": float(full[:, 1:].mean()),
        "train/reward_std_in_group": float(full.std(1).mean()),
        "train/adv_abs": float(adv_full.abs().mean()),
        "train/grad_norm": float(grad_norm),
    }
