"""``rl4rec genrec train-baseline``: train a baseline, select on valid, test once (spec genrec.md §9).

    rl4rec genrec train-baseline --model sasrec --dataset Industrial_and_Scientific seed=1

One loop for every model: build from config -> resume -> epochs over the training rows with a
full-ranking evaluation on the selection set after each ``eval_every`` epochs (early stopping on
``select_metric``, ``best.pt`` kept) -> the best weights ranked against *all* items on the test
file -> ``test_results.json`` in the run directory (overall and popularity-grouped metrics, wall
time). Popularity has no epochs: it counts the training targets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field

log = logging.getLogger(__name__)

__all__ = ["BaselineConfig", "train_baseline", "evaluate_model", "build_model", "format_results"]


@dataclass(frozen=True)
class BaselineConfig(RunConfig):
    """A baseline run: model, data, optimisation and evaluation (``rl4rec genrec train-baseline``)."""

    NAME_KEYS = ("model", "dataset")
    NAME_EXCLUDE = (*RunConfig.NAME_EXCLUDE, "data_dir", "eval_batch_size", "keep_every")

    experiment: str = field("genrec-baselines", "experiment name")
    model: Literal["sasrec", "gru4rec", "pop"] = field("sasrec", "sasrec | gru4rec | pop (most popular)", short="")
    dataset: str = field("Industrial_and_Scientific", "category name or folder", short="")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    train_recipe: str = field("auto", "training rows: auto (train.csv if present, else r1) | file | r1 | r1+r2 | r1+v90 | ...", short="train")
    skip_bad_rows: bool = field(False, "drop malformed CSV rows (counted in the results) instead of failing")
    max_len: int = field(10, "history items fed to the model (the last ones)", ge=1)
    hidden: int = field(32, "embedding / hidden size d", ge=1, short="d")
    num_blocks: int = field(1, "SASRec attention blocks", ge=1, short="blocks")
    num_heads: int = field(1, "SASRec attention heads", ge=1, short="heads")
    dropout: float = field(0.3, "dropout (embeddings, attention, FFN)", ge=0.0, lt=1.0)
    loss: Literal["ce", "bce"] = field("ce", "ce: softmax cross-entropy over all items; bce: one sampled negative (upstream)")
    lr: float = field(5e-3, "Adam learning rate (upstream 1e-3 reaches the same valid NDCG ~5x slower on the R1 rebuild)", gt=0.0)
    weight_decay: float = field(1e-5, "Adam L2 weight decay (upstream 1e-5)", ge=0.0, short="wd")
    batch_size: int = field(256, "training rows per step", ge=1, short="bs")
    epochs: int = field(200, "maximum epochs", ge=1)
    eval_every: int = field(1, "evaluate on the selection set every N epochs", ge=1)
    patience: int = field(10, "stop after this many evaluations without improvement (0 = never)", ge=0)
    select_metric: str = field("ndcg@10", "selection metric on valid: hr@K | ndcg@K | mrr@K")
    ks: tuple[int, ...] = field((1, 3, 5, 10, 20), "cut-offs reported")
    popularity_groups: int = field(3, "test rows grouped by history popularity (counted on train)", ge=1)
    eval_batch_size: int = field(1024, "rows per evaluation batch", ge=1)
    keep_every: int = field(0, "keep checkpoints/step_N.pt every N epochs (0 = only last and best)", ge=0)

    def check(self) -> None:
        super().check()
        name, _, k = self.select_metric.partition("@")
        if name not in ("hr", "ndcg", "mrr") or not k.isdigit():
            raise ConfigError(f"select_metric: {self.select_metric!r} must look like ndcg@10, hr@5 or mrr@20")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError("ks: needs positive cut-offs")


def build_model(cfg: BaselineConfig, num_items: int, counts: np.ndarray | None = None):
    from rl4rec.genrec.baselines.models import GRU4Rec, Popularity, SASRec

    if cfg.model == "sasrec":
        return SASRec(num_items, cfg.hidden, cfg.max_len, cfg.num_blocks, cfg.num_heads, cfg.dropout)
    if cfg.model == "gru4rec":
        return GRU4Rec(num_items, cfg.hidden, cfg.max_len, cfg.dropout)
    return Popularity(num_items, cfg.max_len, counts)


def evaluate_model(model, examples, ks=(1, 3, 5, 10, 20), batch_size: int = 1024) -> tuple[dict[str, float], np.ndarray]:
    """Full ranking of every item for each example: (metrics, 0-based ranks of the targets)."""
    import torch

    from rl4rec.metrics.ranking import ranking_metrics, ranks_from_scores

    model.eval()
    ranks = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            logits = model.logits([e.history for e in chunk])
            targets = torch.tensor([e.target_item_id for e in chunk])
            ranks.append(ranks_from_scores(logits, targets).numpy())
    r = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    return ranking_metrics(r, ks), r


def train_baseline(cfg: BaselineConfig) -> dict[str, Any] | None:
    """Train, select on valid, test; returns the test results (``None`` when stopped by SIGTERM)."""

    from rl4rec.genrec.data import load_dataset
    from rl4rec.metrics.popularity import grouped_metrics, history_popularity, item_popularity, popularity_groups
    from rl4rec.progress import track
    from rl4rec.runs import Run, load_checkpoint

    t_start = time.perf_counter()
    with Run(cfg, key_metric=f"valid/{cfg.select_metric}") as run:
        ds = load_dataset(cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows)
        n = ds.num_items
        if not ds.train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        train_targets = np.asarray([e.target_item_id for e in ds.train])
        model = build_model(cfg, n, np.bincount(train_targets, minlength=n))
        ks = tuple(sorted(set(cfg.ks) | {int(cfg.select_metric.split("@")[1])}))
        # done = stopped early; a run that reached cfg.epochs continues if resumed with more epochs
        state: dict[str, Any] = {"best": -1.0, "best_epoch": 0, "bad": 0, "done": False, "train_s": 0.0, "epoch": 0}

        def model_file() -> dict[str, Any]:
            return {"kind": model.kind, "config": model.config(), "state_dict": model.state_dict()}

        if cfg.model == "pop":
            valid_metrics, _ = evaluate_model(model, ds.valid, ks, cfg.eval_batch_size)
            state.update(best=valid_metrics[cfg.select_metric], done=True)
            run.log_metrics({f"valid/{k}": v for k, v in valid_metrics.items()}, 0)
            run.save_checkpoint({"model_file": model_file(), **state}, 0, best=True)
        else:
            _fit(cfg, run, model, ds, state, ks, model_file, track)

        best = load_checkpoint(run.ckpt_dir / "best.pt")
        model.load_state_dict(best["model_file"]["state_dict"])
        valid_metrics, _ = evaluate_model(model, ds.valid, ks, cfg.eval_batch_size)
        test_metrics, ranks = evaluate_model(model, ds.test, ks, cfg.eval_batch_size)
        pop = item_popularity((e.history for e in ds.train), train_targets, num_items=n)
        groups = popularity_groups(history_popularity((e.history for e in ds.test), pop), cfg.popularity_groups)
        result = {
            "model": cfg.model,
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "seed": cfg.seed,
            "rows": {"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)},
            "skipped_rows": ds.report["skipped"],
            "num_items": n,
            "params": int(sum(p.numel() for p in model.parameters())),
            "best_epoch": int(state["best_epoch"]),
            "epochs_run": int(state["epoch"]),
            "valid": valid_metrics,
            "test": test_metrics,
            "test_popularity_groups": grouped_metrics(ranks, groups, (1, 3, 5, 10)),
            "popularity_grouping": "test rows by the summed train popularity of their history items; group1 = most popular",
            "train_s": float(state["train_s"]),
            "wall_s": time.perf_counter() - t_start,
            "run_dir": str(run.dir),
        }
        run.log_metrics({f"test/{k}": v for k, v in test_metrics.items()}, int(state["epoch"]))
        run.write_result("test_results.json", result)
        return result


def _fit(cfg, run, model, ds, state, ks, model_file, track) -> None:
    """Epoch loop with early stopping; resumable from ``last.pt``."""
    import torch
    import torch.nn.functional as F

    from rl4rec.genrec.data.examples import pad_histories

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = torch.Generator().manual_seed(cfg.seed)
    if run.resume_state is not None:
        model.load_state_dict(run.resume_state["model_file"]["state_dict"])
        opt.load_state_dict(run.resume_state["optimizer"])
        sampler.set_state(run.resume_state["sampler"])
        state.update({k: run.resume_state[k] for k in state})
        # building the model drew from the global RNG after Run restored it: restore it again so
        # dropout continues exactly where the interrupted run stopped
        from rl4rec.runs import set_rng_state

        set_rng_state(run.resume_state["rng"])
    n = ds.num_items
    seqs_np, lens_np = pad_histories([e.history for e in ds.train], cfg.max_len, pad=n, padding="right")
    seqs, lens = torch.as_tensor(seqs_np), torch.as_tensor(lens_np)
    targets = torch.tensor([e.target_item_id for e in ds.train])

    def ckpt() -> dict[str, Any]:
        return {"model_file": model_file(), "optimizer": opt.state_dict(), "sampler": sampler.get_state(), **state}

    epochs = range(int(state["epoch"]) + 1, cfg.epochs + 1)
    for epoch in track(epochs, desc=f"{cfg.model} {ds.name}", enabled=cfg.progress and not state["done"], unit="epoch"):
        if state["done"]:
            break
        if run.stop_requested:
            run.save_checkpoint(ckpt(), epoch - 1)
            run.check_stop()
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(targets), generator=sampler)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            logits = model(seqs[idx], lens[idx])
            y = targets[idx]
            if cfg.loss == "ce":
                loss = F.cross_entropy(logits, y)
            else:  # one uniformly drawn negative != target per positive (upstream SASRec)
                neg = torch.randint(0, n - 1, y.shape, generator=sampler)
                neg = neg + (neg >= y).long()
                pos_l, neg_l = logits.gather(1, y[:, None]), logits.gather(1, neg[:, None])
                loss = F.binary_cross_entropy_with_logits(pos_l, torch.ones_like(pos_l)) + F.binary_cross_entropy_with_logits(
                    neg_l, torch.zeros_like(neg_l)
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        state["epoch"] = epoch
        metrics: dict[str, float] = {"train/loss": total / len(perm)}
        is_best = False
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            valid, _ = evaluate_model(model, ds.valid, ks, cfg.eval_batch_size)
            metrics.update({f"valid/{k}": v for k, v in valid.items()})
            score = valid[cfg.select_metric]
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch, bad=0)
                is_best = True
            else:
                state["bad"] += 1
            if cfg.patience and state["bad"] >= cfg.patience:
                state["done"] = True
                log.info("early stop at epoch %d (best %s %.4f at epoch %d)", epoch, cfg.select_metric, state["best"], state["best_epoch"])
        state["train_s"] += time.perf_counter() - t0
        metrics["perf/epoch_s"] = time.perf_counter() - t0
        run.log_metrics(metrics, epoch)
        keep = bool(cfg.keep_every) and epoch % cfg.keep_every == 0
        run.save_checkpoint(ckpt(), epoch, keep=keep, best=is_best)


def format_results(result: dict[str, Any]) -> str:
    keys = [k for k in result["test"] if k.split("@")[0] in ("hr", "ndcg")]
    lines = [
        f"{result['model']} on {result['dataset']} ({result['train_recipe']}, {result['rows']['train']} train rows), "
        f"best epoch {result['best_epoch']}, {result['wall_s']:.1f}s",
        "test: " + " ".join(f"{k}={result['test'][k]:.4f}" for k in keys),
        f"results: {result['run_dir']}/test_results.json",
    ]
    return "\n".join(lines)
