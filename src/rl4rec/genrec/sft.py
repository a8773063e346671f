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

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rl4rec.config import to_dict
from rl4rec.devices import mean_over_processes
from rl4rec.genrec.artifacts import load_sft_dataset
from rl4rec.genrec.sft_config import SFTConfig, TaskMix
from rl4rec.training import Task, fit, format_run, lr_lambda, reported_ks

log = logging.getLogger(__name__)

__all__ = ["SFTConfig", "TaskMix", "SFTTask", "train_sft", "build_samples", "encode_samples", "sft_loss", "mixture_order", "epoch_batches", "collate", "extra_texts"]


# --------------------------------------------------------------------------- data


def build_samples(builder, ds, tasks: dict[str, float], rows: dict[str, list] | None = None):
    """``{task: [Sample, ...]}`` for the tasks with a positive weight; a sequence task's samples come
    from ``rows[task]`` when given, else from ``ds.train``."""
    from rl4rec.genrec.prompts import SEQ_TASKS

    rows = rows or {}
    return {t: builder.seq_samples(t, rows.get(t, ds.train)) if t in SEQ_TASKS else builder.item_samples(t)
            for t in tasks}


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


def mixture_order(rng: np.random.Generator, sizes: list[int], weights: list[float]) -> np.ndarray:
    """Shuffled indices of a task mixture whose tasks hold consecutive blocks of ``sizes`` samples:
    each task contributes ``weight x size`` of them (a fractional weight: a fresh random subset)."""
    parts, offset = [], 0
    for n, w in zip(sizes, weights, strict=True):
        parts.extend([np.arange(offset, offset + n)] * int(w))
        frac = w - int(w)
        if frac > 0:
            parts.append(offset + rng.choice(n, int(round(frac * n)), replace=False))
        offset += n
    return rng.permutation(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def epoch_batches(seed: int, epoch: int, sizes: list[int], weights: list[float], lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of (seed, epoch): so a resumed run replays the
    same order from its step. Each task contributes ``weight x size`` samples; batches are
    grouped by length within windows of 64 batches (less padding), then shuffled."""
    rng = np.random.default_rng([seed, epoch, 7])
    idx = mixture_order(rng, sizes, weights)
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


def sft_loss(model, input_ids, labels, normalizer: int | None = None):
    """Mean cross-entropy of the answer tokens (or their sum / ``normalizer``: a process's share of
    a batch split over processes). Right padding with a causal mask never lets a pad influence an
    earlier position, so no attention mask is passed (SDPA's fast causal path)."""
    import torch.nn.functional as F

    from rl4rec.genrec.model import split_backbone_head

    backbone, head = split_backbone_head(model)
    hidden = backbone(input_ids=input_ids).last_hidden_state
    target = labels[:, 1:]
    sel = target != -100
    logits = head(hidden[:, :-1][sel]).float()
    if normalizer is None:
        return F.cross_entropy(logits, target[sel])
    return F.cross_entropy(logits, target[sel], reduction="sum") / normalizer


def sft_update(dev, opt, sched, params: list, grad_clip: float, chunks, loss_of) -> dict[str, float]:
    """One optimizer step on this process's ``chunks`` of a batch: ``loss_of(chunk)`` (the chunk's
    share of the batch loss) under autocast and backward per chunk, the loss summed over chunks and
    processes, then the gradients summed over processes, clipped and applied, and the schedule
    stepped. Returns ``train/loss``, ``train/grad_norm`` and ``train/lr``."""
    opt.zero_grad(set_to_none=True)
    loss = 0.0
    for chunk in chunks:
        with dev.autocast():
            part = loss_of(chunk)
        dev.backward(part)
        loss += float(part.detach())
    if dev.world > 1:
        loss = mean_over_processes({"l": loss}, dev.device)["l"] * dev.world
    grad_norm = dev.step(opt, params, grad_clip)
    sched.step()
    return {"train/loss": loss, "train/grad_norm": grad_norm, "train/lr": sched.get_last_lr()[0]}


#: tasks added after the first released results: their templates join the BPE training text only
#: when they are used, so the tokenizers (and results) of earlier configs stay exactly reproducible
_LATER_TASKS = ("seq_title2title",)


def extra_texts(builder, tasks: dict[str, float] | None = None) -> list[str]:
    """Fixed prompt text, so the from-scratch BPE learns its words as tokens."""
    from rl4rec.genrec.prompts import PREAMBLE, TEMPLATES

    used = [t for t in TEMPLATES if t not in _LATER_TASKS or (tasks or {}).get(t, 0) > 0]
    return [PREAMBLE, "### Instruction:\n", "### User Input: \n", "\n\n### Response:\n", builder.cat] + [x for t in used for x in TEMPLATES[t]]


def run_tokenizer(run, dev, build):
    """(tokenizer, original vocabulary size) of a run: made by ``build()`` once per run by the main
    process and saved in ``tokenizer/`` (reloaded on resume; the other processes load it)."""
    from rl4rec.genrec.tokenizer import load_tokenizer
    from rl4rec.runs import atomic_write_text

    tok_dir = run.layout.tokenizer
    if dev.is_main and not (run.resume_state is not None and tok_dir.is_dir()):
        tok, orig = build()
        tok.save_pretrained(tok_dir)
        atomic_write_text(tok_dir / "orig_vocab_size.json", json.dumps({"orig_vocab_size": orig}))
        dev.wait()
        return tok, orig
    dev.wait()
    return load_tokenizer(tok_dir), int(json.loads((tok_dir / "orig_vocab_size.json").read_text())["orig_vocab_size"])


# --------------------------------------------------------------------------- the task


class SFTTask(Task):
    """Steps over a seeded per-epoch mixture; validation by constrained beam search (or free text).

    With N processes each takes every N-th row of a batch; the loss is summed over its answer
    tokens and divided by the batch's token count, and gradients are summed: the same update as
    one process (tested).
    """

    STATE = ("model", "opt", "sched", "tokens")

    def __init__(self, cfg: SFTConfig, run, dev):
        import torch

        from rl4rec.genrec.decoding import ItemTrie
        from rl4rec.genrec.evaluate import valid_subset
        from rl4rec.genrec.model import build_model, build_tokenizer
        from rl4rec.genrec.prompts import PromptBuilder

        self.cfg, self.run, self.dev = cfg, run, dev
        self.ds = ds = load_sft_dataset(cfg)
        if not ds.train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        self.builder = builder = PromptBuilder(ds.catalog, cfg.prompt, ds.name)

        def new_tokenizer():
            texts = list(ds.catalog.titles) + (list(ds.catalog.descriptions) if cfg.tokenizer.descriptions else [])
            return build_tokenizer(cfg.model, ds.catalog.sids, texts, cfg.tokenizer, extra_texts(builder, cfg.tasks.weights()))

        tok, orig = run_tokenizer(run, dev, new_tokenizer)
        self.tok = tok
        model, meta = build_model(cfg.model, tok, orig)
        self.model = model.to(dev.device)
        meta.update(dataset=ds.name, train_recipe=ds.train_recipe, prompt=to_dict(cfg.prompt), max_len=cfg.max_len, sid_levels=ds.catalog.sids.num_levels)
        self.meta = meta
        self.trie = ItemTrie.from_catalog(ds.catalog, tok)

        self.weights = weights = cfg.tasks.weights()
        pools = build_samples(builder, ds, weights)
        t0 = time.perf_counter()
        samples = [s for t in weights for s in pools[t]]
        self.encoded, self.n_prompt, self.truncated = encode_samples(builder, tok, samples, cfg.max_len)
        self.lengths = lengths = np.asarray([len(x) for x in self.encoded])
        self.sizes = sizes = [len(pools[t]) for t in weights]
        log.info(
            "SFT mixture %s: %s samples, %.1f tokens/sample, %d histories shortened to fit max_len (%.1fs)",
            ds.name, dict(zip(weights, sizes, strict=True)), lengths.mean(), self.truncated, time.perf_counter() - t0,
        )
        self.batches = functools.lru_cache(maxsize=1)(self.batches)  # a pure function of the epoch: once per epoch
        self.steps_per_epoch = len(self.batches(0))
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self.name, self.select_key = f"sft {ds.name}", f"valid/{cfg.select_metric}"
        self.valid = valid_subset(ds.valid, cfg.eval_rows)  # the same subset for every seed and eval
        self.ks = reported_ks(cfg.ks, cfg.select_metric, cfg.eval_beams)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg.warmup(self.total_steps), cfg.schedule, self.total_steps))
        self.text_eval = _text_evaluator(cfg, ds, tok, builder) if cfg.eval_task == "seq_title2title" else None
        self.tokens = 0

    def batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_batches(self.cfg.seed, epoch, self.sizes, list(self.weights.values()), self.lengths, self.cfg.batch_size)

    def train_step(self, step: int) -> dict[str, float]:
        dev = self.dev
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        batch = self.batches(epoch)[pos]
        self.model.train()
        # one process: the mean over its answer tokens; N: each its sum / the whole batch's answer tokens
        n_answer = None if dev.world == 1 else int(sum(len(self.encoded[i]) - self.n_prompt[i] for i in batch))

        def loss_of(rows: np.ndarray):
            input_ids, labels = collate(self.encoded, self.n_prompt, rows, self.tok.pad_token_id)
            return sft_loss(self.model, input_ids.to(dev.device), labels.to(dev.device), normalizer=n_answer)

        mine = batch[dev.rank :: dev.world]
        chunks = [mine] if len(mine) else []
        metrics = sft_update(dev, self.opt, self.sched, self.params, self.cfg.grad_clip, chunks, loss_of)
        n_tok = int(self.lengths[batch].sum())
        self.tokens += n_tok
        return {**metrics, "train/epoch": step / self.steps_per_epoch, "train/tokens": float(n_tok)}

    def validate(self, step: int) -> dict[str, float]:
        from rl4rec.genrec.evaluate import validation_metrics

        cfg = self.cfg
        if self.text_eval is not None:
            return self.text_eval(self.model, self.valid)
        return validation_metrics(self.model, self.tok, self.trie, self.builder, self.valid, beams=cfg.eval_beams,
                                  batch_size=cfg.eval_batch_size, max_len=cfg.max_len, ks=self.ks)

    def save_model(self, folder, info: dict[str, Any]) -> None:
        from rl4rec.genrec.model import save_model_dir

        save_model_dir(self.model, self.tok, folder, {**self.meta, **info})

    def summary(self) -> dict[str, Any]:
        ds, weights, sizes = self.ds, self.weights, self.sizes
        return {
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "rows": {"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)},
            "tasks": dict(zip(weights, sizes, strict=True)),
            "task_weights": weights,
            "samples_per_epoch": int(sum(len(b) for b in self.batches(0))),
            "tokens_per_sample": float(self.lengths.mean()),
            "truncated_samples": int(self.truncated),
            "params": self.meta["params"],
            "vocab_size": self.meta["vocab_size"],
            "tokens_trained": int(self.tokens),
        }

    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        from rl4rec.genrec.evaluate import baseline_results, comparison_table, evaluate_run
        from rl4rec.genrec.model import load_model_dir

        cfg, ds, run = self.cfg, self.ds, self.run
        if self.text_eval is not None:
            best_model, _, _ = load_model_dir(run.layout.model("best"))
            metrics = self.text_eval(best_model.to(self.dev.device), ds.test, prefix="", progress=cfg.progress)
            baselines = baseline_results(ds.name, ds.train_recipe, "test", len(ds.test), runs_dir=cfg.runs_dir,
                                         bench_json=cfg.baselines_file or None)
            table = comparison_table(metrics, baselines, name="SFT free text (ours)")
            out = {"test": metrics, "baselines": baselines, "table": table}
        else:
            test = evaluate_run(run.dir, split="test", beams=cfg.test_beams, which="best", runs_dir=cfg.runs_dir,
                                progress=False, threads=cfg.threads, device=self.dev.device, baselines_file=cfg.baselines_file or None)
            out = {"test": {k: v for k, v in test["metrics"].items() if k != "popularity_groups"},
                   "test_popularity_groups": test["metrics"].get("popularity_groups"), "test_eval_s": test["eval_s"],
                   "baselines": test["baselines"], "table": test["table"]}
        # free-text metrics carry no ci95 keys, so one filter serves both
        self.log_test(out["test"], self.total_steps)
        return out


def train_sft(cfg: SFTConfig) -> dict[str, Any] | None:
    """Train, validate, test; returns the results (``None`` when stopped by SIGTERM)."""
    return fit(cfg, lambda run, dev: SFTTask(cfg, run, dev), key_metric=f"valid/{cfg.select_metric}")


def _text_evaluator(cfg: SFTConfig, ds, tok, builder):
    """Validation/test of a free-text model: greedy titles grounded by retrieval (spec §10)."""
    from rl4rec.genrec.retrieval import RetrievalIndex
    from rl4rec.genrec.sid.text import embed_items, make_encoder
    from rl4rec.genrec.textgen import HFGenerator, text_metrics

    encoder = make_encoder(cfg.eval_encoder)
    index = RetrievalIndex(embed_items(ds.catalog, encoder, cache_dir=Path(cfg.runs_dir) / ".cache"), encoder)
    ks = reported_ks(cfg.ks, cfg.select_metric)

    def evaluate(model, examples, prefix: str = "valid/", progress: bool = False) -> dict[str, float]:
        gen = HFGenerator(model, tok, max_new_tokens=cfg.eval_max_new_tokens)
        return text_metrics(gen, index, builder, tok, examples, ks=ks, max_len=cfg.max_len, batch_size=cfg.eval_batch_size, prefix=prefix, progress=progress)

    return evaluate


def format_results(result: dict[str, Any]) -> str:
    return format_run(f"SFT on {result['dataset']} ({result['train_recipe']}, {result['rows']['train']} train rows, {sum(result['tasks'].values())} samples/epoch): "
                      f"{result['steps']} steps, best step {result['best_step']}, train {result['train_s']:.0f}s, wall {result['wall_s']:.0f}s", result)
