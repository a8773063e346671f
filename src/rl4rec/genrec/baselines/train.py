"""``rl4rec genrec train-baseline``: train a baseline, select on valid, test once (spec genrec.md §9).

    rl4rec genrec train-baseline --model sasrec --dataset Industrial_and_Scientific seed=1

One loop for every model: build from config -> resume -> epochs over the training rows with a
full-ranking evaluation on the selection set after each ``eval_every`` epochs (early stopping on
``select_metric``, ``best.pt`` kept) -> the best weights ranked against *all* items on the test
file -> ``test_results.json`` in the run directory (overall and popularity-grouped metrics, wall
time). Popularity has no epochs: it counts the training targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rl4rec.config import ConfigError, field
from rl4rec.training import Task, TrainingConfig, check_rank_metric, default, fit, reported_ks

__all__ = ["BaselineConfig", "BaselineTask", "train_baseline", "evaluate_model", "build_model", "format_results"]


@dataclass(frozen=True)
class BaselineConfig(TrainingConfig):
    """A baseline run: model, data, optimisation and evaluation (``rl4rec genrec train-baseline``)."""

    NAME_KEYS = ("model", "dataset")
    NAME_EXCLUDE = (*TrainingConfig.NAME_EXCLUDE, "data_dir", "eval_batch_size", "keep_every")

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
    lr: float = default(TrainingConfig, "lr", 5e-3, "Adam learning rate (upstream 1e-3 reaches the same valid NDCG ~5x slower on the R1 rebuild)")
    weight_decay: float = default(TrainingConfig, "weight_decay", 1e-5, "Adam L2 weight decay (upstream 1e-5)")
    batch_size: int = field(256, "training rows per step", ge=1, short="bs")
    epochs: int = field(200, "maximum epochs", ge=1)
    eval_every: int = default(TrainingConfig, "eval_every", 1, "evaluate on the selection set every N epochs (one step = one epoch)")
    patience: int = default(TrainingConfig, "patience", 10)
    select_metric: str = default(TrainingConfig, "select_metric", "ndcg@10", "selection metric on valid: hr@K | ndcg@K | mrr@K")
    ks: tuple[int, ...] = field((1, 3, 5, 10, 20), "cut-offs reported")
    popularity_groups: int = field(3, "test rows grouped by history popularity (counted on train)", ge=1)
    eval_batch_size: int = field(1024, "rows per evaluation batch", ge=1)
    keep_every: int = default(TrainingConfig, "keep_every", 0, "keep checkpoints/step_N.pt every N epochs (0 = only last and best)")

    def check(self) -> None:
        super().check()
        check_rank_metric(self.select_metric)
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
            targets = torch.tensor([e.target_item_id for e in chunk], device=logits.device)
            ranks.append(ranks_from_scores(logits, targets).cpu().numpy())
    r = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    return ranking_metrics(r, ks), r


class BaselineTask(Task):
    """One step = one epoch over the training rows; validation = full ranking on valid."""

    unit = "epoch"

    def __init__(self, cfg: BaselineConfig, run, dev):
        import torch

        from rl4rec.genrec.data import load_dataset
        from rl4rec.genrec.data.examples import pad_histories

        self.cfg, self.run, self.dev = cfg, run, dev
        self.ds = ds = load_dataset(cfg.dataset, cfg.data_dir or None, train_recipe=cfg.train_recipe, skip_bad_rows=cfg.skip_bad_rows)
        n = ds.num_items
        if not ds.train:
            raise ValueError(f"{ds.name}: no training rows with recipe {ds.train_recipe}")
        targets = np.asarray([e.target_item_id for e in ds.train])
        self.model = build_model(cfg, n, np.bincount(targets, minlength=n)).to(dev.device)
        self.ks = reported_ks(cfg.ks, cfg.select_metric)
        self.name, self.select_key = f"{cfg.model} {ds.name}", f"valid/{cfg.select_metric}"
        self.eval_every = cfg.eval_every
        self.total_steps = 0 if cfg.model == "pop" else cfg.epochs  # popularity counts, it has no epochs
        self.eval_at_start = cfg.model == "pop"  # its one validation (step 0) makes best.pt
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        if self.total_steps:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            seqs, lens = pad_histories([e.history for e in ds.train], cfg.max_len, pad=n)
            self.seqs, self.lens, self.targets = torch.as_tensor(seqs), torch.as_tensor(lens), torch.as_tensor(targets)

    def model_file(self) -> dict[str, Any]:
        return {"kind": self.model.kind, "config": self.model.config(), "state_dict": self.model.state_dict()}

    def train_step(self, step: int) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        cfg, n, dev = self.cfg, self.ds.num_items, self.dev.device
        self.model.train()
        perm = torch.randperm(len(self.targets), generator=self.sampler)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            y = self.targets[idx].to(dev)
            with self.dev.autocast():
                logits = self.model(self.seqs[idx].to(dev), self.lens[idx].to(dev))
            if cfg.loss == "ce":
                loss = F.cross_entropy(logits.float(), y)
            else:  # one uniformly drawn negative != target per positive (upstream SASRec)
                neg = torch.randint(0, n - 1, y.shape, generator=self.sampler).to(dev)
                neg = neg + (neg >= y).long()
                pos_l, neg_l = logits.float().gather(1, y[:, None]), logits.float().gather(1, neg[:, None])
                loss = F.binary_cross_entropy_with_logits(pos_l, torch.ones_like(pos_l)) + F.binary_cross_entropy_with_logits(
                    neg_l, torch.zeros_like(neg_l)
                )
            self.opt.zero_grad()
            self.dev.backward(loss)
            self.dev.step(self.opt, self.model.parameters(), cfg.grad_clip)
            total += float(loss.detach()) * len(idx)
        return {"train/loss": total / len(perm)}

    def validate(self, step: int) -> dict[str, float]:
        valid, _ = evaluate_model(self.model, self.ds.valid, self.ks, self.cfg.eval_batch_size)
        return {f"valid/{k}": v for k, v in valid.items()}

    def state_dict(self) -> dict[str, Any]:
        out = {"model_file": self.model_file(), "sampler": self.sampler.get_state()}
        if self.total_steps:
            out["optimizer"] = self.opt.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model_file"]["state_dict"])
        self.sampler.set_state(state["sampler"])
        if self.total_steps:
            self.opt.load_state_dict(state["optimizer"])

    def summary(self) -> dict[str, Any]:
        ds = self.ds
        return {
            "model": self.cfg.model,
            "dataset": ds.name,
            "train_recipe": ds.train_recipe,
            "rows": {"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)},
            "skipped_rows": ds.report["skipped"],
            "num_items": ds.num_items,
            "params": int(sum(p.numel() for p in self.model.parameters())),
        }

    def test(self, loop: dict[str, Any]) -> dict[str, Any]:
        from rl4rec.genrec.latent.evaluate import row_groups
        from rl4rec.metrics.popularity import grouped_metrics
        from rl4rec.runs import load_checkpoint

        cfg, ds = self.cfg, self.ds
        self.model.load_state_dict(load_checkpoint(self.run.layout.checkpoint("best"))["task"]["model_file"]["state_dict"])
        valid_metrics, _ = evaluate_model(self.model, ds.valid, self.ks, cfg.eval_batch_size)
        test_metrics, ranks = evaluate_model(self.model, ds.test, self.ks, cfg.eval_batch_size)
        groups = row_groups(ds.train, ds.test, ds.num_items, n_groups=cfg.popularity_groups)
        self.log_test(test_metrics, int(loop["last_step"]))
        return {
            "best_epoch": int(loop["best_step"]),
            "epochs_run": int(loop["last_step"]),
            "valid": valid_metrics,
            "test": test_metrics,
            "test_popularity_groups": grouped_metrics(ranks, groups, (1, 3, 5, 10)),
            "popularity_grouping": "test rows by the summed train popularity of their history items; group1 = most popular",
        }


def train_baseline(cfg: BaselineConfig) -> dict[str, Any] | None:
    """Train, select on valid, test; returns the test results (``None`` when stopped by SIGTERM)."""
    return fit(cfg, lambda run, dev: BaselineTask(cfg, run, dev), key_metric=f"valid/{cfg.select_metric}")


def format_results(result: dict[str, Any]) -> str:
    keys = [k for k in result["test"] if k.split("@")[0] in ("hr", "ndcg")]
    lines = [
        f"{result['model']} on {result['dataset']} ({result['train_recipe']}, {result['rows']['train']} train rows), "
        f"best epoch {result['best_epoch']}, {result['wall_s']:.1f}s",
        "test: " + " ".join(f"{k}={result['test'][k]:.4f}" for k in keys),
        f"results: {result['run_dir']}/test_results.json",
    ]
    return "\n".join(lines)
