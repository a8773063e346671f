"""``rl4rec genrec latent-sft``: SFT of the LM + latent module on title generation (spec §2.4).

    rl4rec genrec latent-sft configs/genrec/latent_sft_cds.yaml seed=0
    rl4rec genrec latent-sft configs/genrec/latent_sft_cds.yaml latent.num_latents=0   # no latent

Everything trains (LM and latent module), with plain cross-entropy on the title tokens + EOS.
The prompt runs once per example with a KV cache (:mod:`rl4rec.genrec.latent.model`). Validation
decodes a fixed subset of valid rows with the title trie and keeps the best model; the best model
is tested on the full test file with popularity groups and the MostPop baseline on the same rows
(``test_results.json``, per-row ranks in ``test_ranks.npy`` for paired comparisons).

Run folder: ``tokenizer/``, ``model/best`` and ``model/last`` (LM + tokenizer + ``latent.pt``),
``checkpoints/last.pt`` (model, optimizer, scheduler, RNG), metrics, log.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field, to_dict
from rl4rec.genrec.latent.prompts import LatentPromptConfig
from rl4rec.genrec.model import ModelConfig
from rl4rec.genrec.tokenizer import TokenizerConfig

log = logging.getLogger(__name__)

__all__ = ["LatentConfig", "LatentEvalConfig", "LatentSFTConfig", "LatentData", "load_latent_data", "train_latent_sft", "collate"]


@dataclass(frozen=True)
class LatentConfig:
    """The latent module (spec §2.2)."""

    num_latents: int = field(1, "latent thought vectors before the answer (0 = plain LM, the 'SFT without latent' baseline)", ge=0, short="latents")
    rope_base: float = field(1000.0, "rotary base of the latent attention (the release: 1000, not the backbone's)", gt=0.0)


@dataclass(frozen=True)
class LatentEvalConfig:
    """Validation and test decoding (spec §3)."""

    beams: int = field(10, "beams = titles returned per row", ge=1)
    batch_size: int = field(32, "prompts per beam search", ge=1)
    length_penalty: float = field(1.0, "titles ranked by sum log-prob / length ** this (the release: 1.0; 0 = total log-prob)", ge=0.0)
    rows: int = field(1000, "validation rows (a fixed random subset of valid; 0 = all)", ge=0)
    test_rows: int = field(0, "test rows (0 = the full test file; a subset goes into the run name)", ge=0)
    popularity_groups: int = field(3, "test rows cut into this many popularity groups (group 1 = most popular)", ge=1)
    group_by: Literal["history", "target"] = field("history", "popularity of the row's history items (the release) or of its target")
    mostpop_source: Literal["valid", "train"] = field("valid", "MostPop counts target titles of this split (spec §6.6: valid)")


@dataclass
class LatentData:
    """The dataset and title structures a latent run (and its GRPO stage) works on."""

    ds: Any
    index: Any  # TitleIndex
    c: str  # category word
    template: str


def load_latent_data(cfg) -> LatentData:
    from rl4rec.genrec.data import load_dataset
    from rl4rec.genrec.latent.prompts import category_word
    from rl4rec.genrec.latent.titles import TitleIndex

    ds = load_dataset(cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows)
    index = TitleIndex.from_titles(ds.catalog.titles)
    log.info("%s: %d items, %d distinct titles (%d items share a title)", ds.name, ds.num_items, index.num_groups, int((index.group_sizes()[index.group_of_item] > 1).sum()))
    return LatentData(ds, index, category_word(ds.name, cfg.prompt.category), cfg.prompt.template)


@dataclass(frozen=True)
class LatentSFTConfig(RunConfig):
    """SFT of a latent-reasoning title recommender (``rl4rec genrec latent-sft``)."""

    NAME_KEYS = ("dataset", "model.preset")
    NAME_EXCLUDE = (*RunConfig.NAME_EXCLUDE, "data_dir", "device", "stop_at_step", "eval.batch_size")

    experiment: str = field("genrec-latent-sft", "experiment name")
    dataset: str = field("CDs_and_Vinyl", "category name or folder", short="")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    train_recipe: str = field("r1", "training rows: r1 (the honest rebuild; the release ships no train file) | file | r1+v90 | ...", short="train")
    skip_bad_rows: bool = field(False, "drop malformed CSV rows instead of failing")
    sample: int = field(0, "train on a random subset of this many rows (0 = all; the release's 'sample')", ge=0)
    model: ModelConfig = field(default_factory=ModelConfig, help="the causal LM (a preset from scratch, or a local pretrained folder)")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig, help="the from-scratch tokenizer")
    prompt: LatentPromptConfig = field(default_factory=LatentPromptConfig, help="the prompt")
    latent: LatentConfig = field(default_factory=LatentConfig, help="the latent module")
    eval: LatentEvalConfig = field(default_factory=LatentEvalConfig, help="validation / test decoding")
    max_len: int = field(512, "prompt tokens kept (left truncation; the release's cutoff_len)", ge=16)
    epochs: int = field(3, "passes over the training rows", ge=1)
    max_steps: int = field(0, "stop after this many optimizer steps (0 = epochs decide)", ge=0)
    batch_size: int = field(32, "rows per optimizer step", ge=1, short="bs")
    micro_batch: int = field(0, "rows per forward/backward chunk, gradients accumulated (0 = the whole batch; memory only)", ge=0)
    lr: float = field(1e-3, "AdamW peak learning rate (from scratch ~1e-3; full fine-tuning of a pretrained LM 1e-5..5e-5)", gt=0.0)
    weight_decay: float = field(0.0, "AdamW weight decay", ge=0.0, short="wd")
    warmup_steps: int = field(20, "linear warm-up steps", ge=0)
    schedule: Literal["linear", "cosine", "constant"] = field("linear", "decay after warm-up")
    grad_clip: float = field(1.0, "max gradient norm (0 = off)", ge=0.0)
    mixed_precision: Literal["no", "bf16"] = field("no", "bf16: autocast the forward passes, fp32 master weights and optimizer (the spec's recommended preset; the release kept bf16 weights)")
    eval_every: int = field(0, "validate every N steps (0 = at the end of each epoch)", ge=0)
    select_metric: str = field("ndcg@10", "validation metric selecting the best model (hr@K | ndcg@K)")
    patience: int = field(0, "stop after this many validations without improvement (0 = never; the release: 1)", ge=0)
    test_at_end: bool = field(True, "test the best model on the test file at the end")
    device: Literal["auto", "cpu", "cuda"] = field("auto", "auto: CUDA when available")
    stop_at_step: int = field(0, "tests: act as if SIGTERM arrived after this step (0 = never)", ge=0)

    def check(self) -> None:
        super().check()
        name, _, k = self.select_metric.partition("@")
        if name not in ("hr", "ndcg") or not k.isdigit() or int(k) > self.eval.beams:
            raise ConfigError(f"select_metric: {self.select_metric!r} must look like ndcg@10 or hr@5 with K <= eval.beams ({self.eval.beams})")


def pick_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def sample_rows(rows: list, n: int, seed: int) -> list:
    """``n`` random rows in file order (all when ``n`` is 0 or larger than the split)."""
    if not n or n >= len(rows):
        return list(rows)
    pick = np.sort(np.random.default_rng([seed, 42]).choice(len(rows), n, replace=False))
    return [rows[i] for i in pick]


def collate(prompts: list[list[int]], targets: list[list[int]], pad_id: int, device):
    """Left-padded prompts, right-padded targets and the target mask."""
    import torch

    from rl4rec.genrec.decoding import left_pad

    ids, mask = left_pad(prompts, pad_id, device)
    width = max(len(t) for t in targets)
    tg = torch.full((len(targets), width), pad_id, dtype=torch.long)
    tm = torch.zeros((len(targets), width), dtype=torch.bool)
    for r, t in enumerate(targets):
        tg[r, : len(t)] = torch.as_tensor(t)
        tm[r, : len(t)] = True
    return ids, mask, tg.to(device), tm.to(device)


def build_latent_model(cfg: LatentSFTConfig, data: LatentData, tok_dir: Path, resume: bool):
    """(LatentLM, tokenizer, meta): tokenizer built once per run (reloaded on resume)."""
    from rl4rec.genrec.latent.model import LatentLM
    from rl4rec.genrec.latent.module import LatentAttention
    from rl4rec.genrec.latent.prompts import THOUGHT_TOKEN, fixed_texts
    from rl4rec.genrec.model import build_model
    from rl4rec.genrec.tokenizer import build_scratch_tokenizer, load_tokenizer
    from rl4rec.runs import atomic_write_text

    if resume and tok_dir.is_dir():
        tok = load_tokenizer(tok_dir)
        orig = int(json.loads((tok_dir / "orig_vocab_size.json").read_text())["orig_vocab_size"])
    else:
        if cfg.model.path:
            tok = load_tokenizer(cfg.model.path)
            orig = len(tok)
            # keep the model's own extra special tokens (Qwen's <|im_start|> ...): add, never replace
            tok.add_special_tokens({"additional_special_tokens": [THOUGHT_TOKEN]}, replace_extra_special_tokens=False)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
        else:
            tok = build_scratch_tokenizer(None, data.ds.catalog.titles, cfg.tokenizer, fixed_texts(data.c), special_tokens=[THOUGHT_TOKEN])
            orig = len(tok)
        tok.save_pretrained(tok_dir)
        atomic_write_text(tok_dir / "orig_vocab_size.json", json.dumps({"orig_vocab_size": orig}))
    lm, meta = build_model(cfg.model, tok, orig)
    d = lm.config.hidden_size
    module = LatentAttention(d, cfg.latent.rope_base) if cfg.latent.num_latents else None
    llm = LatentLM(lm, module, cfg.latent.num_latents, tok.convert_tokens_to_ids(THOUGHT_TOKEN))
    meta.update(dataset=data.ds.name, train_recipe=data.ds.train_recipe, prompt=to_dict(cfg.prompt), max_len=cfg.max_len, category_word=data.c)
    return llm, tok, meta


def train_latent_sft(cfg: LatentSFTConfig) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    import torch

    from rl4rec.genrec.evaluate import valid_subset
    from rl4rec.genrec.latent.evaluate import encode_prompts
    from rl4rec.genrec.latent.model import save_latent_model
    from rl4rec.genrec.latent.prompts import encode_target
    from rl4rec.genrec.latent.titles import TitleTrie
    from rl4rec.genrec.sft import _lr_lambda, epoch_batches
    from rl4rec.progress import track
    from rl4rec.runs import Run, set_rng_state

    t_start = time.perf_counter()
    with Run(cfg, key_metric=f"valid/{cfg.select_metric}") as run:
        data = load_latent_data(cfg)
        ds = data.ds
        device = pick_device(cfg.device)
        llm, tok, meta = build_latent_model(cfg, data, run.dir / "tokenizer", run.resume_state is not None)
        llm.to(device)
        trie = TitleTrie.from_index(data.index, tok).to(device)
        train = sample_rows(ds.train, cfg.sample, cfg.seed)
        if not train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        prompts = encode_prompts(train, ds.catalog, tok, data.c, data.template, cfg.max_len)
        targets = [encode_target(tok, ds.catalog.title(ex.target_item_id)) for ex in train]
        lengths = np.asarray([len(p) + len(t) for p, t in zip(prompts, targets, strict=True)])
        log.info("latent SFT %s: %d rows, %.1f prompt + %.1f title tokens per row, %s, trie %r", ds.name, len(train), np.mean([len(p) for p in prompts]), np.mean([len(t) for t in targets]), f"{cfg.latent.num_latents} latent(s)", trie)
        steps_per_epoch = len(epoch_batches(cfg.seed, 0, [len(train)], [1.0], lengths, cfg.batch_size))
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        eval_every = cfg.eval_every or steps_per_epoch
        valid = valid_subset(ds.valid, cfg.eval.rows)

        opt = torch.optim.AdamW([p for p in llm.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
        state: dict[str, Any] = {"best": -1.0, "best_step": 0, "train_s": 0.0, "bad": 0, "last_step": run.start_step}
        if run.resume_state is not None:
            llm.load_state_dict(run.resume_state["model"])
            opt.load_state_dict(run.resume_state["optimizer"])
            sched.load_state_dict(run.resume_state["scheduler"])
            state.update({k: run.resume_state[k] for k in state})
            set_rng_state(run.resume_state["rng"])

        def ckpt() -> dict[str, Any]:
            return {"model": llm.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **state}

        def validate() -> dict[str, float]:
            res = evaluate_split(llm, tok, data, trie, valid, cfg, desc="valid")
            return {f"valid/{k}": v for k, v in res["metrics"].items() if isinstance(v, (int, float))}

        llm.train()
        batches, batches_epoch = None, -1
        for step in track(range(run.start_step + 1, total + 1), desc=f"latent-sft {ds.name}", enabled=cfg.progress, unit="step"):
            if run.stop_requested:
                run.save_checkpoint(ckpt(), step - 1)
                run.check_stop()
            t0 = time.perf_counter()
            epoch, pos = divmod(step - 1, steps_per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = epoch_batches(cfg.seed, epoch, [len(train)], [1.0], lengths, cfg.batch_size), epoch
            batch = batches[pos]
            opt.zero_grad(set_to_none=True)
            n_tok, loss = sum(len(targets[i]) for i in batch), 0.0
            for chunk in np.array_split(batch, -(-len(batch) // (cfg.micro_batch or len(batch)))):
                ids, mask, tg, tm = collate([prompts[i] for i in chunk], [targets[i] for i in chunk], tok.pad_token_id, device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16"):
                    part = llm.answer_loss(ids, mask, tg, tm) * (int(tm.sum()) / n_tok)  # token-weighted: chunks add up to the batch mean
                part.backward()
                loss += float(part.detach())
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(llm.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            state["train_s"] += time.perf_counter() - t0
            if step % cfg.tracking.log_every == 0:
                run.log_metrics({"train/loss": loss, "train/lr": sched.get_last_lr()[0], "train/epoch": step / steps_per_epoch}, step)
            is_best = False
            if step % eval_every == 0 or step == total:
                metrics = validate()
                if metrics[f"valid/{cfg.select_metric}"] > state["best"]:
                    state.update(best=metrics[f"valid/{cfg.select_metric}"], best_step=step, bad=0)
                    is_best = True
                else:
                    state["bad"] += 1
                run.log_metrics(metrics, step)
                log.info("step %d/%d valid %s", step, total, " ".join(f"{k[6:]}={v:.4f}" for k, v in metrics.items() if "@" in k and "ci95" not in k))
                llm.train()
                run.save_checkpoint(ckpt(), step, best=is_best)
                save_latent_model(llm, tok, run.dir / "model" / "last", {**meta, "step": step})
                if is_best:
                    save_latent_model(llm, tok, run.dir / "model" / "best", {**meta, "step": step, "valid": metrics})
            state["last_step"] = step
            if cfg.stop_at_step == step and step < total:
                run.save_checkpoint(ckpt(), step)
                run._stop = True  # the test hook: what the SIGTERM handler does
                run.check_stop()
            if cfg.patience and state["bad"] >= cfg.patience:
                log.info("early stop at step %d: %d validations without improvement", step, state["bad"])
                break

        result: dict[str, Any] = {
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "seed": cfg.seed,
            "num_latents": cfg.latent.num_latents,
            "rows": {"train": len(train), "valid": len(ds.valid), "test": len(ds.test)},
            "steps": int(state["last_step"]),
            "steps_planned": total,
            "best_step": int(state["best_step"]),
            "best_valid": {cfg.select_metric: state["best"]},
            "params": meta["params"],
            "train_s": float(state["train_s"]),
            "run_dir": str(run.dir),
        }
        if cfg.test_at_end:
            result.update(test_run(run.dir, cfg, data, which="best"))
            run.log_metrics(test_metrics_to_log(result), total)
        result["wall_s"] = time.perf_counter() - t_start
        run.write_result("test_results.json", result)
        return result


def evaluate_split(llm, tok, data: LatentData, trie, rows, cfg, *, groups=None, desc: str = "decode") -> dict[str, Any]:
    from rl4rec.genrec.latent.evaluate import evaluate_titles

    return evaluate_titles(
        llm, tok, data.ds.catalog, data.index, trie, rows, c=data.c, template=data.template, max_len=cfg.max_len,
        beams=cfg.eval.beams, batch_size=cfg.eval.batch_size, groups=groups, progress=cfg.progress, desc=desc, length_penalty=cfg.eval.length_penalty,
    )


def test_run(run_dir: Path, cfg, data: LatentData, which: str = "best", ranks_file: str = "test_ranks.npy") -> dict[str, Any]:
    """Test the run's ``which`` model on the test file (or ``eval.test_rows`` of it), with
    popularity groups and MostPop on the same rows; writes the per-row ranks to ``ranks_file``."""
    from rl4rec.genrec.evaluate import valid_subset
    from rl4rec.genrec.latent.evaluate import most_popular_lists, row_groups, title_metrics
    from rl4rec.genrec.latent.model import load_latent_model
    from rl4rec.genrec.latent.titles import TitleTrie
    from rl4rec.runs import atomic_save_npy

    ds = data.ds
    llm, tok, _ = load_latent_model(Path(run_dir) / "model" / which)
    llm.to(pick_device(cfg.device))
    trie = TitleTrie.from_index(data.index, tok).to(llm.lm.device)
    rows = valid_subset(ds.test, cfg.eval.test_rows) if cfg.eval.test_rows else list(ds.test)
    groups = row_groups(ds.train, rows, ds.num_items, n_groups=cfg.eval.popularity_groups, by=cfg.eval.group_by)
    res = evaluate_split(llm, tok, data, trie, rows, cfg, groups=groups, desc="test")
    atomic_save_npy(Path(run_dir) / ranks_file, res["ranks"])
    source = ds.valid_file if cfg.eval.mostpop_source == "valid" else ds.train
    targets = [ex.target_item_id for ex in rows]
    pop, _ = title_metrics(most_popular_lists(source, data.index, len(rows), cfg.eval.beams), data.index.group_of_item[targets], data.index.shared(targets), groups=groups)
    return {"test": res["metrics"], "test_eval_s": res["eval_s"], "mostpop": pop}


def test_metrics_to_log(result: dict[str, Any]) -> dict[str, float]:
    return {f"test/{k}": v for k, v in result["test"].items() if "@" in k and "ci95" not in k and isinstance(v, float)}
