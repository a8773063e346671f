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

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rl4rec.config import ConfigError, field, to_dict
from rl4rec.devices import resolve_device
from rl4rec.genrec.latent.prompts import LatentPromptConfig
from rl4rec.genrec.model import ModelConfig
from rl4rec.genrec.tokenizer import TokenizerConfig
from rl4rec.training import Task, TrainingConfig, default, fit, lr_lambda

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
    max_len: int  # prompt tokens kept (the SFT run's max_len)


def load_latent_data(cfg) -> LatentData:
    from rl4rec.genrec.data import load_dataset
    from rl4rec.genrec.latent.prompts import category_word
    from rl4rec.genrec.latent.titles import TitleIndex

    ds = load_dataset(cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows)
    index = TitleIndex.from_titles(ds.catalog.titles)
    log.info("%s: %d items, %d distinct titles (%d items share a title)", ds.name, ds.num_items, index.num_groups, int((index.group_sizes()[index.group_of_item] > 1).sum()))
    return LatentData(ds, index, category_word(ds.name, cfg.prompt.category), cfg.prompt.template, cfg.max_len)


@dataclass(frozen=True)
class LatentSFTConfig(TrainingConfig):
    """SFT of a latent-reasoning title recommender (``rl4rec genrec latent-sft``)."""

    NAME_KEYS = ("dataset", "model.preset")
    NAME_EXCLUDE = (*TrainingConfig.NAME_EXCLUDE, "data_dir", "stop_at_step", "eval.batch_size")

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
    lr: float = default(TrainingConfig, "lr", 1e-3, "AdamW peak learning rate (from scratch ~1e-3; full fine-tuning of a pretrained LM 1e-5..5e-5)")
    weight_decay: float = default(TrainingConfig, "weight_decay", 0.0)
    warmup_steps: int = default(TrainingConfig, "warmup_steps", 20)
    schedule: Literal["linear", "cosine", "constant"] = default(TrainingConfig, "schedule", "linear")
    grad_clip: float = default(TrainingConfig, "grad_clip", 1.0)
    mixed_precision: Literal["no", "bf16", "fp16"] = default(TrainingConfig, "mixed_precision", "no", "bf16: autocast the forward passes, fp32 master weights and optimizer (the spec's recommended preset; the release kept bf16 weights)")
    eval_every: int = default(TrainingConfig, "eval_every", 0, "validate every N steps (0 = at the end of each epoch)")
    select_metric: str = default(TrainingConfig, "select_metric", "ndcg@10", "validation metric selecting the best model (hr@K | ndcg@K)")
    patience: int = default(TrainingConfig, "patience", 0, "stop after this many validations without improvement (0 = never; the release: 1)")
    test_at_end: bool = default(TrainingConfig, "test_at_end", True)

    def check(self) -> None:
        super().check()
        name, _, k = self.select_metric.partition("@")
        if name not in ("hr", "ndcg") or not k.isdigit() or int(k) > self.eval.beams:
            raise ConfigError(f"select_metric: {self.select_metric!r} must look like ndcg@10 or hr@5 with K <= eval.beams ({self.eval.beams})")


def collate(prompts: list[list[int]], targets: list[list[int]], pad_id: int, device):
    """Left-padded prompts, right-padded targets and the target mask."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from rl4rec.genrec.decoding import left_pad

    ids, mask = left_pad(prompts, pad_id, device)
    tg = pad_sequence([torch.as_tensor(t, dtype=torch.long) for t in targets], batch_first=True, padding_value=pad_id)
    tm = torch.arange(tg.shape[1]) < torch.tensor([len(t) for t in targets])[:, None]
    return ids, mask, tg.to(device), tm.to(device)


def build_latent_model(cfg: LatentSFTConfig, data: LatentData, run, dev):
    """(LatentLM, tokenizer, meta): tokenizer built once per run (reloaded on resume)."""
    from rl4rec.genrec.latent.model import LatentLM
    from rl4rec.genrec.latent.module import LatentAttention
    from rl4rec.genrec.latent.prompts import THOUGHT_TOKEN, fixed_texts
    from rl4rec.genrec.model import build_model
    from rl4rec.genrec.sft import run_tokenizer
    from rl4rec.genrec.tokenizer import build_scratch_tokenizer, load_tokenizer

    def new_tokenizer():
        if not cfg.model.path:
            tok = build_scratch_tokenizer(None, data.ds.catalog.titles, cfg.tokenizer, fixed_texts(data.c), special_tokens=[THOUGHT_TOKEN])
            return tok, len(tok)
        tok = load_tokenizer(cfg.model.path)
        orig = len(tok)
        # keep the model's own extra special tokens (Qwen's <|im_start|> ...): add, never replace
        tok.add_special_tokens({"additional_special_tokens": [THOUGHT_TOKEN]}, replace_extra_special_tokens=False)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        return tok, orig

    tok, orig = run_tokenizer(run, dev, new_tokenizer)
    lm, meta = build_model(cfg.model, tok, orig)
    d = lm.config.hidden_size
    module = LatentAttention(d, cfg.latent.rope_base) if cfg.latent.num_latents else None
    llm = LatentLM(lm, module, cfg.latent.num_latents, tok.convert_tokens_to_ids(THOUGHT_TOKEN))
    meta.update(dataset=data.ds.name, train_recipe=data.ds.train_recipe, prompt=to_dict(cfg.prompt), max_len=cfg.max_len, category_word=data.c)
    return llm, tok, meta


class LatentTask(Task):
    """What the latent SFT and GRPO tasks share: the training rows, the optimizer, validation,
    the saved model and the test. A subclass sets ``cfg`` (its ``eval``, ``progress`` and ``device``
    are read), ``run``, ``dev``, ``data``, ``llm``, ``tok`` and ``meta``."""

    def encode_rows(self) -> None:
        """The title trie, the training rows (``cfg.sample`` of them) as prompt and title ids, and
        the fixed validation subset."""
        from rl4rec.genrec.evaluate import valid_subset
        from rl4rec.genrec.latent.evaluate import encode_prompts
        from rl4rec.genrec.latent.prompts import encode_target
        from rl4rec.genrec.latent.titles import TitleTrie

        cfg, data, ds = self.cfg, self.data, self.data.ds
        self.trie = TitleTrie.from_index(data.index, self.tok).to(self.dev.device)
        # cfg.sample random rows in file order (all when 0), drawn per seed
        self.train_rows = train = valid_subset(ds.train, cfg.sample, seed=[cfg.seed, 42])
        self.prompts = encode_prompts(train, ds.catalog, self.tok, data.c, data.template, data.max_len)
        self.targets = [encode_target(self.tok, ds.catalog.title(ex.target_item_id)) for ex in train]
        self.valid = valid_subset(ds.valid, cfg.eval.rows)

    def make_optimizer(self, params: list) -> None:
        """AdamW over ``params`` with the warm-up and schedule over ``total_steps``."""
        import torch

        cfg, self.params = self.cfg, params
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg.warmup(self.total_steps), cfg.schedule, self.total_steps))

    def validate(self, step: int) -> dict[str, float]:
        res = evaluate_split(self.llm, self.tok, self.data, self.trie, self.valid, self.cfg, desc="valid")
        return {f"valid/{k}": v for k, v in res["metrics"].items() if isinstance(v, (int, float))}

    def save_model(self, folder, info: dict[str, Any]) -> None:
        from rl4rec.genrec.latent.model import save_latent_model

        save_latent_model(self.llm, self.tok, folder, {**self.meta, **info})

    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        out = test_run(self.run.dir, self.cfg, self.data, which="best")
        self.log_test(out["test"], self.total_steps)
        return out


class LatentSFTTask(LatentTask):
    """LM + latent module on title generation; rows of a batch split over processes, the loss
    weighted by each chunk's share of the batch's title tokens (so chunks and processes add up to
    the batch mean)."""

    STATE = ("llm", "opt", "sched")

    def __init__(self, cfg: LatentSFTConfig, run, dev):
        from rl4rec.genrec.sft import epoch_batches

        self.cfg, self.run, self.dev = cfg, run, dev
        self.data = data = load_latent_data(cfg)
        ds = data.ds
        self.llm, self.tok, self.meta = build_latent_model(cfg, data, run, dev)
        self.llm.to(dev.device)
        self.encode_rows()
        train, prompts, targets = self.train_rows, self.prompts, self.targets
        if not train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        self.lengths = np.asarray([len(p) + len(t) for p, t in zip(prompts, targets, strict=True)])
        log.info("latent SFT %s: %d rows, %.1f prompt + %.1f title tokens per row, %s, trie %r", ds.name, len(train), np.mean([len(p) for p in prompts]),
                 np.mean([len(t) for t in targets]), f"{cfg.latent.num_latents} latent(s)", self.trie)
        self.batches = functools.lru_cache(maxsize=1)(  # a pure function of the epoch: built once per epoch
            lambda epoch: epoch_batches(cfg.seed, epoch, [len(train)], [1.0], self.lengths, cfg.batch_size)
        )
        self.steps_per_epoch = len(self.batches(0))
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self.name, self.select_key = f"latent-sft {ds.name}", f"valid/{cfg.select_metric}"
        self.make_optimizer([p for p in self.llm.parameters() if p.requires_grad])

    def train_step(self, step: int) -> dict[str, float]:
        from rl4rec.genrec.sft import sft_update

        cfg, dev = self.cfg, self.dev
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        batch = self.batches(epoch)[pos]
        mine = batch[dev.rank :: dev.world]
        self.llm.train()
        n_tok = sum(len(self.targets[i]) for i in batch)

        def loss_of(chunk: np.ndarray):
            prompts, targets = [self.prompts[i] for i in chunk], [self.targets[i] for i in chunk]
            ids, mask, tg, tm = collate(prompts, targets, self.tok.pad_token_id, dev.device)
            # token-weighted: chunks add up to the batch mean
            return self.llm.answer_loss(ids, mask, tg, tm) * (int(tm.sum()) / n_tok)

        chunks = np.array_split(mine, -(-len(mine) // (cfg.micro_batch or len(mine)))) if len(mine) else []
        metrics = sft_update(dev, self.opt, self.sched, self.params, cfg.grad_clip, chunks, loss_of)
        return {**metrics, "train/epoch": step / self.steps_per_epoch}

    def summary(self) -> dict[str, Any]:
        ds = self.data.ds
        return {
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "num_latents": self.cfg.latent.num_latents,
            "rows": {"train": len(self.train_rows), "valid": len(ds.valid), "test": len(ds.test)},
            "params": self.meta["params"],
        }


def train_latent_sft(cfg: LatentSFTConfig) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    return fit(cfg, lambda run, dev: LatentSFTTask(cfg, run, dev), key_metric=f"valid/{cfg.select_metric}")


def evaluate_split(llm, tok, data: LatentData, trie, rows, cfg, *, groups=None, desc: str = "decode") -> dict[str, Any]:
    """Decode ``rows`` with ``cfg.eval``'s beam search (``cfg``: a latent SFT or GRPO config) and score
    them; ``{"metrics", "ranks", "pred", "eval_s"}``."""
    from rl4rec.genrec.latent.evaluate import encode_prompts, predict_titles, title_metrics

    t0 = time.perf_counter()
    ev = cfg.eval
    prompts = encode_prompts(rows, data.ds.catalog, tok, data.c, data.template, data.max_len)
    pred = predict_titles(llm, prompts, trie, beams=ev.beams, batch_size=ev.batch_size, pad_id=tok.pad_token_id,
                          progress=cfg.progress, desc=desc, length_penalty=ev.length_penalty)
    targets = [ex.target_item_id for ex in rows]
    metrics, ranks = title_metrics(pred, data.index.group_of_item[targets], data.index.shared(targets), groups=groups)
    return {"metrics": metrics, "ranks": ranks, "pred": pred, "eval_s": time.perf_counter() - t0}


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
    llm.to(resolve_device(cfg.device))
    trie = TitleTrie.from_index(data.index, tok).to(llm.lm.device)
    rows = valid_subset(ds.test, cfg.eval.test_rows)
    groups = row_groups(ds.train, rows, ds.num_items, n_groups=cfg.eval.popularity_groups, by=cfg.eval.group_by)
    res = evaluate_split(llm, tok, data, trie, rows, cfg, groups=groups, desc="test")
    atomic_save_npy(Path(run_dir) / ranks_file, res["ranks"])
    source = ds.valid_file if cfg.eval.mostpop_source == "valid" else ds.train
    targets = [ex.target_item_id for ex in rows]
    pop, _ = title_metrics(most_popular_lists(source, data.index, len(rows), cfg.eval.beams), data.index.group_of_item[targets], data.index.shared(targets), groups=groups)
    return {"test": res["metrics"], "test_eval_s": res["eval_s"], "mostpop": pop}
