"""``rl4rec genrec sft``: supervised fine-tuning of a causal LM on the SID task mixture (spec §5).

    rl4rec genrec sft --config configs/genrec/sft_industrial.yaml seed=1

One loop (the shape of :mod:`rl4rec.smoke`): config -> dataset, tokenizer, model -> resume ->
steps over a seeded per-epoch mixture of task samples -> validation HR/NDCG by constrained beam
search every ``eval_every`` steps (best model kept) -> the best model tested once on the test
file (``test_results.json``, with the baselines table).

Mixture: each task's weight multiplies its natural size per epoch (1 = every row once,
2 = twice, 0.5 = a fresh random half each epoch, 0 = off). Sequence tasks use the training rows
only, item tasks (title <-> SID) only catalog metadata, so no valid/test target is ever seen.
The loss is next-token cross-entropy on the answer tokens and EOS only (prompt labels -100),
with the LM head applied at those positions only.

Run folder, besides the usual files: ``tokenizer/`` (built once, reloaded on resume),
``model/best`` and ``model/last`` (``save_pretrained`` model + tokenizer, loadable with
:func:`rl4rec.genrec.model.load_model_dir`), and ``checkpoints/last.pt`` with the optimizer.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field, to_dict
from rl4rec.genrec.model import ModelConfig
from rl4rec.genrec.prompts import TASKS, PromptConfig
from rl4rec.genrec.tokenizer import TokenizerConfig

log = logging.getLogger(__name__)

__all__ = ["SFTConfig", "TaskMix", "train_sft", "load_sft_dataset", "build_samples", "encode_samples", "sft_loss", "load_run_model", "load_sft_run", "LoadedRun"]


@dataclass(frozen=True)
class TaskMix:
    """Per-epoch multiplier of each task's natural size (0 = off)."""

    seq_sid2sid: float = field(1.0, "history SIDs -> next SID, one sample per training row", ge=0.0)
    title2sid: float = field(1.0, "item title -> its SID, one sample per catalog item", ge=0.0)
    sid2title: float = field(1.0, "SID -> the item's title, one sample per catalog item", ge=0.0)
    seq_title2sid: float = field(1.0, "history titles -> next SID, one sample per training row", ge=0.0)
    seq_sid2title: float = field(0.0, "history SIDs -> next item's title, one sample per training row", ge=0.0)
    desc2sid: float = field(0.0, "item description -> its SID, one sample per catalog item", ge=0.0)
    seq_title2title: float = field(0.0, "history titles -> next item's title (free text, no SIDs), one sample per training row", ge=0.0)

    def weights(self) -> dict[str, float]:
        return {t: getattr(self, t) for t in TASKS if getattr(self, t) > 0}


@dataclass(frozen=True)
class SFTConfig(RunConfig):
    """Supervised fine-tuning of a SID generator (``rl4rec genrec sft``)."""

    NAME_KEYS = ("dataset", "model.preset")
    NAME_EXCLUDE = (*RunConfig.NAME_EXCLUDE, "data_dir", "eval_batch_size", "keep_every", "test_at_end", "stop_at_step")

    experiment: str = field("genrec-sft", "experiment name")
    dataset: str = field("Industrial_and_Scientific", "category name or folder", short="")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    train_recipe: str = field("auto", "training rows: auto (train.csv if present, else r1) | file | r1 | r1+r2 | ...", short="train")
    sid_index: str = field("", "index.json replacing the folder's SIDs (e.g. from build-sids); needed when the folder has none", short="sids")
    skip_bad_rows: bool = field(False, "drop malformed CSV rows instead of failing")
    model: ModelConfig = field(default_factory=ModelConfig, help="the causal LM")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig, help="the from-scratch tokenizer")
    prompt: PromptConfig = field(default_factory=PromptConfig, help="prompt templates (stored with the model)")
    tasks: TaskMix = field(default_factory=TaskMix, help="the task mixture")
    max_len: int = field(512, "tokens per sample; the oldest history items are dropped to fit (counted)", ge=16)
    epochs: int = field(3, "passes over the mixture", ge=1)
    max_steps: int = field(0, "stop after this many optimizer steps (0 = epochs decide)", ge=0)
    batch_size: int = field(32, "samples per optimizer step", ge=1, short="bs")
    lr: float = field(1e-3, "AdamW peak learning rate (from scratch ~1e-3; full fine-tuning of a pretrained LM 1e-5..3e-4)", gt=0.0)
    weight_decay: float = field(0.0, "AdamW weight decay", ge=0.0, short="wd")
    warmup_steps: int = field(20, "linear warm-up steps", ge=0)
    schedule: Literal["linear", "cosine", "constant"] = field("linear", "decay after warm-up (to 0; cosine to 10%)")
    grad_clip: float = field(1.0, "max gradient norm (0 = off)", ge=0.0)
    eval_every: int = field(0, "validate every N steps (0 = at the end of each epoch)", ge=0)
    eval_rows: int = field(1000, "validation rows (a fixed random subset of valid; 0 = all)", ge=0)
    eval_beams: int = field(20, "beams of the validation beam search", ge=1)
    eval_batch_size: int = field(32, "prompts per validation beam search", ge=1)
    select_metric: str = field("ndcg@10", "validation metric selecting the best model (hr@K | ndcg@K | mrr@K)")
    patience: int = field(0, "stop after this many validations without improvement (0 = never)", ge=0)
    ks: tuple[int, ...] = field((1, 3, 5, 10, 20), "cut-offs reported (K <= beams)")
    test_at_end: bool = field(True, "evaluate the best model on the test file at the end")
    test_beams: int = field(20, "beams of the final test evaluation", ge=1)
    eval_task: Literal["seq_sid2sid", "seq_title2title"] = field(
        "seq_sid2sid", "what validation/test measure: SIDs by constrained beam search, or free-text titles grounded by retrieval (spec §10)"
    )
    eval_encoder: str = field("minilm", "eval_task=seq_title2title: the text encoder grounding generated titles (minilm | hash[:DIM] | local folder)")
    eval_max_new_tokens: int = field(32, "eval_task=seq_title2title: longest generated title", ge=1)
    popularity_groups: int = field(3, "test rows grouped by history popularity (counted on train)", ge=1)
    keep_every: int = field(0, "keep checkpoints/step_N.pt every N steps (0 = only last and best)", ge=0)
    stop_at_step: int = field(0, "tests: act as if SIGTERM arrived after this step (0 = never)", ge=0)

    def check(self) -> None:
        super().check()
        name, _, k = self.select_metric.partition("@")
        if name not in ("hr", "ndcg", "mrr") or not k.isdigit():
            raise ConfigError(f"select_metric: {self.select_metric!r} must look like ndcg@10, hr@5 or mrr@20")
        if int(k) > self.eval_beams and self.eval_task == "seq_sid2sid":
            raise ConfigError(f"select_metric: K={k} exceeds eval_beams={self.eval_beams} (K must be <= beams)")
        if not self.tasks.weights():
            raise ConfigError("tasks: every task weight is 0; give at least one task a positive weight")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError("ks: needs positive cut-offs")


# --------------------------------------------------------------------------- data


def load_sft_dataset(cfg: SFTConfig):
    """The dataset of a config, with its SIDs (``sid_index`` replaces the folder's)."""
    from rl4rec.genrec.data import load_dataset

    ds = load_dataset(
        cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows,
        sid_index=cfg.sid_index or None,
    )
    if ds.catalog.sids is None:
        raise FileNotFoundError(
            f"{ds.name} has no SIDs: build them (rl4rec genrec build-sids --dataset {cfg.dataset}) and pass sid_index=<out>/{ds.name}.index.json"
        )
    return ds


def build_samples(builder, ds, tasks: dict[str, float]):
    """``{task: [Sample, ...]}`` for the tasks with a positive weight."""
    from rl4rec.genrec.prompts import SEQ_TASKS

    return {t: (builder.seq_samples(t, ds.train) if t in SEQ_TASKS else builder.item_samples(t)) for t in tasks}


def encode_samples(builder, tokenizer, samples, max_len: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """(token ids per sample, prompt length per sample, samples whose history was shortened)."""
    from rl4rec.genrec.prompts import encode_answer, prompt_ids

    ids, n_prompt, truncated = [], [], 0
    for s in samples:
        answer = encode_answer(tokenizer, builder.answer(s.task, s.target_item_id))
        if len(answer) >= max_len - 8:
            answer = answer[: max_len - 9] + answer[-1:]  # an over-long title answer: keep EOS
        p, dropped = prompt_ids(builder, tokenizer, s, max_len=max_len, reserve=len(answer))
        truncated += dropped > 0
        ids.append(np.asarray(p + answer, dtype=np.int64))
        n_prompt.append(len(p))
    return ids, np.asarray(n_prompt, dtype=np.int64), truncated


def epoch_batches(seed: int, epoch: int, sizes: list[int], weights: list[float], lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of (seed, epoch): so a resumed run replays the
    same order from its step. Each task contributes ``weight x size`` samples; batches are
    grouped by length within windows of 64 batches (less padding), then shuffled."""
    rng = np.random.default_rng([seed, epoch, 7])
    parts, offset = [], 0
    for n, w in zip(sizes, weights, strict=True):
        base = np.arange(offset, offset + n)
        parts.extend([base] * int(w))
        frac = w - int(w)
        if frac > 0:
            parts.append(offset + rng.choice(n, int(round(frac * n)), replace=False))
        offset += n
    idx = rng.permutation(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    window = batch_size * 64
    batches = []
    for i in range(0, len(idx), window):
        chunk = idx[i : i + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    return [batches[o] for o in rng.permutation(len(batches))]


def collate(ids: list[np.ndarray], n_prompt: np.ndarray, batch: np.ndarray, pad_id: int):
    """Right-padded ``input_ids`` and ``labels`` (-100 on the prompt and padding)."""
    import torch

    width = max(len(ids[i]) for i in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for r, i in enumerate(batch):
        seq = torch.from_numpy(ids[i])
        input_ids[r, : len(seq)] = seq
        labels[r, n_prompt[i] : len(seq)] = seq[n_prompt[i] :]
    return input_ids, labels


def sft_loss(model, input_ids, labels):
    """Mean cross-entropy of the answer tokens. Right padding with a causal mask never lets a pad
    influence an earlier position, so no attention mask is passed (SDPA's fast causal path)."""
    import torch.nn.functional as F

    from rl4rec.genrec.model import split_backbone_head

    backbone, head = split_backbone_head(model)
    hidden = backbone(input_ids=input_ids).last_hidden_state
    target = labels[:, 1:]
    sel = target != -100
    logits = head(hidden[:, :-1][sel]).float()
    return F.cross_entropy(logits, target[sel])


def _lr_lambda(cfg: SFTConfig, total: int):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.schedule == "constant":
            return 1.0
        frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - frac)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    return f


#: tasks added after the first released results: their templates join the BPE training text only
#: when they are used, so the tokenizers (and results) of earlier configs stay exactly reproducible
_LATER_TASKS = ("seq_title2title",)


def _extra_texts(builder, tasks: dict[str, float] | None = None) -> list[str]:
    """Fixed prompt text, so the from-scratch BPE learns its words as tokens."""
    from rl4rec.genrec.prompts import PREAMBLE, TEMPLATES

    used = [t for t in TEMPLATES if t not in _LATER_TASKS or (tasks or {}).get(t, 0) > 0]
    return [PREAMBLE, "### Instruction:\n", "### User Input: \n", "\n\n### Response:\n", builder.cat] + [x for t in used for x in TEMPLATES[t]]


# --------------------------------------------------------------------------- the run


def load_run_model(run_dir, which: str = "best"):
    """(model, tokenizer, meta) saved by an SFT (or GRPO) run: ``<run_dir>/model/<which>``."""
    from pathlib import Path

    from rl4rec.genrec.model import load_model_dir

    return load_model_dir(Path(run_dir) / "model" / which)


@dataclass
class LoadedRun:
    """Everything a later stage (GRPO, evaluation) needs from an SFT run, built the run's way."""

    run_dir: Any
    cfg: SFTConfig
    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    dataset: Any  # SeqDataset: catalog, train/valid/test examples
    builder: Any  # PromptBuilder with the run's prompt config
    trie: Any  # ItemTrie of the catalog under the run's tokenizer


def sft_run_of(run_dir):
    """The SFT run that defines a run's data, prompts and tokenizer: the run itself, or for a GRPO
    run the SFT run it started from (recorded in its ``init_run.json``)."""
    from pathlib import Path

    run_dir = Path(run_dir)
    init = run_dir / "init_run.json"
    return Path(json.loads(init.read_text())["run_dir"]) if init.is_file() else run_dir


def load_sft_run(run, which: str = "best", runs_dir: str = "runs") -> LoadedRun:
    """Load an SFT run, or a GRPO run with its SFT run's data and prompts (a folder,
    ``EXPERIMENT/NAME`` or a unique name under ``runs_dir``); the model is the run's own."""
    from pathlib import Path

    from rl4rec.genrec.decoding import ItemTrie
    from rl4rec.genrec.prompts import PromptBuilder
    from rl4rec.runs import config_of, find_run

    run_dir = find_run(Path(runs_dir), str(run))
    cfg = config_of(SFTConfig, sft_run_of(run_dir))
    model, tok, meta = load_run_model(run_dir, which)
    ds = load_sft_dataset(cfg)
    return LoadedRun(run_dir, cfg, model, tok, meta, ds, PromptBuilder(ds.catalog, cfg.prompt, ds.name), ItemTrie.from_catalog(ds.catalog, tok))


def train_sft(cfg: SFTConfig) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    import torch

    from rl4rec.genrec.decoding import ItemTrie
    from rl4rec.genrec.evaluate import evaluate_run, valid_subset, validation_metrics
    from rl4rec.genrec.model import build_model, build_tokenizer, save_model_dir
    from rl4rec.genrec.prompts import PromptBuilder
    from rl4rec.genrec.tokenizer import load_tokenizer
    from rl4rec.progress import track
    from rl4rec.runs import Run, atomic_write_text, set_rng_state

    t_start = time.perf_counter()
    with Run(cfg, key_metric=f"valid/{cfg.select_metric}") as run:
        ds = load_sft_dataset(cfg)
        if not ds.train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        builder = PromptBuilder(ds.catalog, cfg.prompt, ds.name)
        tok_dir = run.dir / "tokenizer"
        if run.resume_state is not None and tok_dir.is_dir():
            tok, orig = load_tokenizer(tok_dir), int(json.loads((tok_dir / "orig_vocab_size.json").read_text())["orig_vocab_size"])
        else:
            texts = list(ds.catalog.titles) + (list(ds.catalog.descriptions) if cfg.tokenizer.descriptions else [])
            tok, orig = build_tokenizer(cfg.model, ds.catalog.sids, texts, cfg.tokenizer, _extra_texts(builder, cfg.tasks.weights()))
            tok.save_pretrained(tok_dir)
            atomic_write_text(tok_dir / "orig_vocab_size.json", json.dumps({"orig_vocab_size": orig}))
        model, meta = build_model(cfg.model, tok, orig)
        meta.update(dataset=ds.name, train_recipe=ds.train_recipe, prompt=to_dict(cfg.prompt), max_len=cfg.max_len, sid_levels=ds.catalog.sids.num_levels)
        trie = ItemTrie.from_catalog(ds.catalog, tok)

        weights = cfg.tasks.weights()
        pools = build_samples(builder, ds, weights)
        t0 = time.perf_counter()
        encoded, n_prompt, truncated = [], [], 0
        for task in weights:
            ids, npr, tr = encode_samples(builder, tok, pools[task], cfg.max_len)
            encoded += ids
            n_prompt.append(npr)
            truncated += tr
        n_prompt = np.concatenate(n_prompt)
        lengths = np.asarray([len(x) for x in encoded])
        sizes = [len(pools[t]) for t in weights]
        log.info(
            "SFT mixture %s: %s samples, %.1f tokens/sample, %d histories shortened to fit max_len (%.1fs)",
            ds.name, dict(zip(weights, sizes, strict=True)), lengths.mean(), truncated, time.perf_counter() - t0,
        )
        steps_per_epoch = len(epoch_batches(cfg.seed, 0, sizes, list(weights.values()), lengths, cfg.batch_size))
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        eval_every = cfg.eval_every or steps_per_epoch
        valid = valid_subset(ds.valid, cfg.eval_rows)  # the same subset for every seed and eval
        ks = tuple(sorted({k for k in cfg.ks if k <= cfg.eval_beams} | {int(cfg.select_metric.split("@")[1])}))

        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
        state: dict[str, Any] = {"best": -1.0, "best_step": 0, "bad": 0, "done": False, "train_s": 0.0, "tokens": 0}
        if run.resume_state is not None:
            model.load_state_dict(run.resume_state["model"])
            opt.load_state_dict(run.resume_state["optimizer"])
            sched.load_state_dict(run.resume_state["scheduler"])
            state.update({k: run.resume_state[k] for k in state})
            set_rng_state(run.resume_state["rng"])  # model building drew from the RNG after Run restored it

        def ckpt() -> dict[str, Any]:
            return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **state}

        text_eval = _text_evaluator(cfg, ds, tok, builder) if cfg.eval_task == "seq_title2title" else None

        def validate(step: int) -> dict[str, float]:  # noqa: ARG001
            if text_eval is not None:
                return text_eval(model, valid)
            return validation_metrics(model, tok, trie, builder, valid, beams=cfg.eval_beams, batch_size=cfg.eval_batch_size, max_len=cfg.max_len, ks=ks)

        model.train()
        batches, batches_epoch = None, -1
        window_t, window_tokens, window_samples = time.perf_counter(), 0, 0
        steps = range(run.start_step + 1, total + 1)
        last_step = run.start_step
        for step in track(steps, desc=f"sft {ds.name}", enabled=cfg.progress and not state["done"], unit="step"):
            if state["done"]:
                break
            if run.stop_requested:
                run.save_checkpoint(ckpt(), step - 1)
                save_model_dir(model, tok, run.dir / "model" / "last", {**meta, "step": step - 1})
                run.check_stop()
            t_step, last_step = time.perf_counter(), step
            epoch, pos = divmod(step - 1, steps_per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = epoch_batches(cfg.seed, epoch, sizes, list(weights.values()), lengths, cfg.batch_size), epoch
            batch = batches[pos]
            input_ids, labels = collate(encoded, n_prompt, batch, tok.pad_token_id)
            loss = sft_loss(model, input_ids, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            n_tok = int(lengths[batch].sum())
            state["tokens"] += n_tok
            state["train_s"] += time.perf_counter() - t_step
            window_tokens += n_tok
            window_samples += len(batch)
            if step % cfg.tracking.log_every == 0:
                now = time.perf_counter()
                run.log_metrics(
                    {
                        "train/loss": float(loss.detach()),
                        "train/lr": sched.get_last_lr()[0],
                        "train/epoch": step / steps_per_epoch,
                        "perf/tokens_per_s": window_tokens / (now - window_t + 1e-9),
                        "perf/samples_per_s": window_samples / (now - window_t + 1e-9),
                    },
                    step,
                )
                window_t, window_tokens, window_samples = now, 0, 0
            is_best = False
            evaluate_now = step % eval_every == 0 or step == total
            if evaluate_now:
                metrics = validate(step)
                score = metrics[f"valid/{cfg.select_metric}"]
                if score > state["best"]:
                    state.update(best=score, best_step=step, bad=0)
                    is_best = True
                else:
                    state["bad"] += 1
                if cfg.patience and state["bad"] >= cfg.patience:
                    state["done"] = True
                run.log_metrics(metrics, step)
                log.info("step %d/%d valid %s", step, total, " ".join(f"{k[6:]}={v:.4f}" for k, v in metrics.items() if k.startswith("valid/") and "@" in k))
                model.train()
            if evaluate_now or (cfg.keep_every and step % cfg.keep_every == 0) or cfg.stop_at_step == step:
                keep = bool(cfg.keep_every) and step % cfg.keep_every == 0
                run.save_checkpoint(ckpt(), step, keep=keep, best=is_best)
                save_model_dir(model, tok, run.dir / "model" / "last", {**meta, "step": step})
                if is_best:
                    save_model_dir(model, tok, run.dir / "model" / "best", {**meta, "step": step, "valid": metrics})
            if cfg.stop_at_step == step and step < total:
                run._stop = True  # the test hook: what the SIGTERM handler does
                run.check_stop()

        result: dict[str, Any] = {
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "seed": cfg.seed,
            "rows": {"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)},
            "tasks": dict(zip(weights, sizes, strict=True)),
            "task_weights": weights,
            "samples_per_epoch": int(sum(len(b) for b in epoch_batches(cfg.seed, 0, sizes, list(weights.values()), lengths, cfg.batch_size))),
            "tokens_per_sample": float(lengths.mean()),
            "truncated_samples": int(truncated),
            "steps": last_step,
            "steps_planned": total,
            "early_stopped": bool(state["done"]),
            "best_step": int(state["best_step"]),
            "best_valid": {cfg.select_metric: state["best"]},
            "params": meta["params"],
            "vocab_size": meta["vocab_size"],
            "train_s": float(state["train_s"]),
            "tokens_trained": int(state["tokens"]),
            "run_dir": str(run.dir),
        }
        if cfg.test_at_end and text_eval is not None:
            from rl4rec.genrec.evaluate import baseline_results, comparison_table
            from rl4rec.genrec.model import load_model_dir

            best_model, _, _ = load_model_dir(run.dir / "model" / "best")
            result["test"] = text_eval(best_model, ds.test, prefix="", progress=cfg.progress)
            result["baselines"] = baseline_results(ds.name, ds.train_recipe, "test", len(ds.test), runs_dir=cfg.runs_dir)
            result["table"] = comparison_table(result["test"], result["baselines"], name="SFT free text (ours)")
            run.log_metrics({f"test/{k}": v for k, v in result["test"].items() if "@" in k}, total)
        elif cfg.test_at_end:
            test = evaluate_run(run.dir, split="test", beams=cfg.test_beams, which="best", runs_dir=cfg.runs_dir, progress=False, threads=cfg.threads)
            result["test"] = {k: v for k, v in test["metrics"].items() if k != "popularity_groups"}
            result["test_popularity_groups"] = test["metrics"].get("popularity_groups")
            result["test_eval_s"] = test["eval_s"]
            result["baselines"] = test["baselines"]
            result["table"] = test["table"]
            run.log_metrics({f"test/{k}": v for k, v in result["test"].items() if "@" in k and not k.endswith("ci95")}, total)
        result["wall_s"] = time.perf_counter() - t_start
        run.write_result("test_results.json", result)
        return result


def _text_evaluator(cfg: SFTConfig, ds, tok, builder):
    """Validation/test of a free-text model: greedy titles grounded by retrieval (spec §10)."""
    from rl4rec.genrec.retrieval import RetrievalIndex
    from rl4rec.genrec.sid.text import embed_items, make_encoder
    from rl4rec.genrec.textgen import HFGenerator, text_metrics

    encoder = make_encoder(cfg.eval_encoder)
    index = RetrievalIndex(embed_items(ds.catalog, encoder, cache_dir=Path(cfg.runs_dir) / ".cache"), encoder)
    ks = tuple(sorted(set(cfg.ks) | {int(cfg.select_metric.split("@")[1])}))

    def evaluate(model, examples, prefix: str = "valid/", progress: bool = False) -> dict[str, float]:
        gen = HFGenerator(model, tok, max_new_tokens=cfg.eval_max_new_tokens)
        return text_metrics(gen, index, builder, tok, examples, ks=ks, max_len=cfg.max_len, batch_size=cfg.eval_batch_size, prefix=prefix, progress=progress)

    return evaluate


def format_results(result: dict[str, Any]) -> str:
    lines = [
        f"SFT on {result['dataset']} ({result['train_recipe']}, {result['rows']['train']} train rows, {sum(result['tasks'].values())} samples/epoch): "
        f"{result['steps']} steps, best step {result['best_step']}, train {result['train_s']:.0f}s, wall {result['wall_s']:.0f}s",
    ]
    if "table" in result:
        lines.append(result["table"])
    lines.append(f"results: {result['run_dir']}/test_results.json")
    return "\n".join(lines)


def _cmd_sft(args: argparse.Namespace) -> int:
    from rl4rec.genrec.cli import config_from_args, friendly_errors, report_result

    @friendly_errors
    def run(a: argparse.Namespace) -> int:
        return report_result(train_sft(config_from_args(SFTConfig, a, ("dataset", "data_dir"))), format_results)

    return run(args)


def register(gsub: argparse._SubParsersAction) -> None:
    from rl4rec.cli import add_config_arguments

    p = gsub.add_parser("sft", help="supervised fine-tuning of a causal LM on the SID task mixture (then a test evaluation)")
    p.add_argument("--config", default=None, help="optional YAML config, e.g. configs/genrec/sft_industrial.yaml")
    p.add_argument("--dataset", default=None, help="category name or folder")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="folder holding category folders")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_sft)
