"""Offline evaluation of a generative recommender (spec genrec.md §8) and ``rl4rec genrec eval``.

    rl4rec genrec eval RUN split=test beams=20

For every row of the split: the ``seq_sid2sid`` prompt (the run's own template, so training and
test prompts agree), constrained beam search, and the 0-based rank of the target among the
``beams`` distinct SIDs returned. A generated SID is a hit when it equals the target item's SID,
so all items sharing a SID count (the number of such "ambiguous" hits is reported). Histories
are not filtered out of the candidates (as upstream).

Writes ``<run>/eval/<split>-b<beams>/predictions.jsonl`` (``user, target, candidates, scores,
rank``) and ``results.json``: HR/NDCG/MRR@K for K <= beams, paired-bootstrap 95% intervals,
popularity-grouped metrics, invalid / duplicate rates (0 by construction; re-checked here by
re-tokenising the catalog independently of the trie), coverage, prompt truncations, wall time,
and a comparison table against the part-1 baselines on the same split.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rl4rec.common import RunConfig
from rl4rec.config import ConfigError, field

log = logging.getLogger(__name__)

__all__ = ["EvalConfig", "evaluate", "Predictions", "predict", "compute_metrics", "valid_subset", "validation_metrics", "evaluate_run", "baseline_results", "comparison_table", "EVAL_KS"]

EVAL_KS = (1, 3, 5, 10, 20, 50)


@dataclass
class Predictions:
    """Beam-search output for a list of examples (row order of the examples)."""

    sid_index: np.ndarray  # (N, beams) distinct-SID index
    items: np.ndarray  # (N, beams) lowest item id of that SID; -1 when the completion is invalid
    scores: np.ndarray  # (N, beams) summed SID-token log-probs
    prompt_tokens: np.ndarray  # (N,)
    truncated: int  # rows whose history lost items to fit max_len
    seconds: float


def valid_completions(tokenizer, catalog) -> set[tuple[int, ...]]:
    """Every catalog completion as the tokenizer encodes ``sid + "\\n"`` + EOS, built from the SID
    *strings*: an independent check of the trie, which is built from token-id lookups."""
    from rl4rec.genrec.prompts import encode_answer

    return {tuple(encode_answer(tokenizer, s)) for s in set(catalog.sids.strings)}


def predict(
    model,
    tokenizer,
    trie,
    builder,
    examples: Sequence,
    *,
    beams: int = 20,
    batch_size: int = 32,
    max_len: int = 512,
    progress: bool = False,
    check: set[tuple[int, ...]] | None = None,
) -> Predictions:
    """Constrained beam search for every example; prompts are batched by length (less padding)."""
    import torch

    from rl4rec.genrec.decoding import constrained_beam_search
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids
    from rl4rec.progress import track

    t0 = time.perf_counter()
    samples = PromptBuilder.seq_samples("seq_sid2sid", examples)
    reserve = trie.max_sid_len + len(trie.suffix_ids)
    encoded = [prompt_ids(builder, tokenizer, s, max_len=max_len, reserve=reserve, phase="test") for s in samples]
    lengths = np.asarray([len(ids) for ids, _ in encoded])
    n = len(samples)
    sid = np.zeros((n, beams), dtype=np.int64)
    items = np.zeros((n, beams), dtype=np.int64)
    scores = np.zeros((n, beams), dtype=np.float64)
    ok_sid = np.ones(trie.num_sids, dtype=bool)
    if check is not None:  # the trie's completion of each SID, checked once against the re-tokenised catalog
        comp, lens = trie.completions.numpy(), (trie.sid_lengths + len(trie.suffix_ids)).numpy()
        ok_sid = np.asarray([tuple(comp[g, : lens[g]].tolist()) in check for g in range(trie.num_sids)])
    order = np.argsort(lengths, kind="stable")
    chunks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for chunk in track(chunks, desc="beam search", enabled=progress, unit="batch"):
            out = constrained_beam_search(model, [encoded[i][0] for i in chunk], trie, num_beams=beams)
            sid[chunk] = out.sid_index.cpu().numpy()
            scores[chunk] = out.scores.cpu().numpy()
            items[chunk] = np.where(ok_sid[sid[chunk]], out.items.cpu().numpy(), -1)
    model.train(was_training)
    return Predictions(sid, items, scores, lengths, int(sum(d > 0 for _, d in encoded)), time.perf_counter() - t0)


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> float:
    """Half-width of the 95% percentile bootstrap interval of a mean over rows."""
    if values.size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float((hi - lo) / 2)


def compute_metrics(
    pred: Predictions,
    targets: Sequence[int],
    item_sid: np.ndarray,
    *,
    ks: Sequence[int] = EVAL_KS,
    num_sids: int,
    groups: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """(metrics, ranks). K above the beam count is dropped (K <= beams is enforced by the metrics).
    ``groups``: a popularity group per row (:func:`rl4rec.genrec.latent.evaluate.row_groups`)."""
    from rl4rec.metrics.popularity import grouped_metrics
    from rl4rec.metrics.ranking import ambiguous_hits, list_quality, ranking_metrics, ranks_from_lists

    beams = pred.items.shape[1]
    ks = tuple(k for k in ks if k <= beams)
    targets = np.asarray(targets, dtype=np.int64)
    ranks = ranks_from_lists(pred.items, targets, groups=item_sid)
    out: dict[str, Any] = dict(ranking_metrics(ranks, ks, num_candidates=beams))
    for k in [k for k in (10, 20) if k in ks]:
        out[f"hr@{k}_ci95"] = bootstrap_ci((ranks < k).astype(np.float64))
        out[f"ndcg@{k}_ci95"] = bootstrap_ci(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0))
    sids = np.where(pred.items >= 0, pred.sid_index, -1)
    quality = list_quality(sids, num_sids)
    out.update(
        invalid_rate=quality["invalid_rate"],
        duplicate_rate=quality["duplicate_rate"],
        sid_coverage=quality["coverage"],
        ambiguous_hits=ambiguous_hits(pred.items, targets, item_sid, k=max(ks)),
        rows=int(targets.size),
        beams=beams,
    )
    if groups is not None:
        out["popularity_groups"] = grouped_metrics(ranks, groups, tuple(k for k in (1, 3, 5, 10) if k <= beams))
    return out, ranks


def valid_subset(examples: Sequence, rows: int, seed: int = 12345) -> list:
    """A fixed random subset of ``rows`` examples (all when ``rows`` is 0 or larger): the same rows
    for every seed, every validation and every stage (SFT and GRPO select on the same rows)."""
    if not rows or rows >= len(examples):
        return list(examples)
    pick = np.sort(np.random.default_rng(seed).choice(len(examples), rows, replace=False))
    return [examples[i] for i in pick]


def validation_metrics(model, tokenizer, trie, builder, examples: Sequence, *, beams: int, batch_size: int, max_len: int, ks: Sequence[int]) -> dict[str, float]:
    """``valid/hr@K``, ``valid/ndcg@K``, ``valid/mrr@K``, ``valid/invalid_rate`` and throughput of a
    constrained beam search over ``examples``: the training-time validation of SFT and GRPO."""
    pred = predict(model, tokenizer, trie, builder, examples, beams=beams, batch_size=batch_size, max_len=max_len)
    metrics, _ = compute_metrics(pred, [e.target_item_id for e in examples], trie.item_sid.numpy(), ks=ks, num_sids=trie.num_sids)
    out = {f"valid/{k}": float(v) for k, v in metrics.items() if "@" in k and not k.endswith("ci95")}
    out["valid/invalid_rate"] = metrics["invalid_rate"]
    out["perf/valid_rows_per_s"] = len(examples) / pred.seconds
    return out


# --------------------------------------------------------------------------- baselines


def baseline_results(dataset: str, train_recipe: str, split: str, rows: int, runs_dir: str | Path = "runs", bench_json: str | Path | None = None) -> list[dict[str, Any]]:
    """Part-1 baseline numbers on the same split: a benchmark table given as ``bench_json`` (mean
    over its seeds, e.g. ``benchmarks/results/genrec_baselines.json``), and the finished
    ``train-baseline`` runs under ``runs_dir`` (mean per model). Rows whose dataset, train recipe
    or row count differ are left out."""
    out: list[dict[str, Any]] = []
    bench = Path(bench_json) if bench_json else None
    if bench is not None and not bench.is_file():
        raise FileNotFoundError(f"baselines file {bench} does not exist")
    if split == "test" and bench is not None:
        for r in json.loads(bench.read_text()).get("rows", []):
            if r.get("dataset") == dataset and r.get("train_recipe") == train_recipe and r.get("test_rows") == rows:
                metrics = {k: v["mean"] for k, v in r.items() if isinstance(v, dict) and "mean" in v and "@" in k}
                out.append({"model": r["model"], "source": bench.name, "seeds": len(r.get("seeds", [])), **metrics})
    per_model: dict[str, list[dict[str, float]]] = {}
    for path in sorted(Path(runs_dir).glob("*/*/test_results.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if res.get("model") not in ("pop", "sasrec", "gru4rec") or res.get("dataset") != dataset or res.get("train_recipe") != train_recipe:
            continue
        if res.get("rows", {}).get(split) != rows or split not in res:
            continue
        per_model.setdefault(res["model"], []).append(res[split])
    listed = {r["model"] for r in out}  # the benchmark table already has these (often the same runs)
    for model, runs in sorted(per_model.items()):
        if model in listed:
            continue
        keys = set.intersection(*(set(r) for r in runs))
        out.append({"model": model, "source": f"{runs_dir} runs", "seeds": len(runs), **{k: float(np.mean([r[k] for r in runs])) for k in sorted(keys)}})
    return out


def comparison_table(ours: dict[str, Any], baselines: list[dict[str, Any]], name: str = "SFT (ours)") -> str:
    """Markdown table: HR/NDCG@K of this model and of each baseline row."""
    ks = [k for k in (1, 3, 5, 10, 20) if f"hr@{k}" in ours]
    cols = [f"hr@{k}" for k in ks] + [f"ndcg@{k}" for k in ks if k > 1]
    lines = ["| model | source | seeds | " + " | ".join(c.upper() for c in cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for b in [{**ours, "model": name, "source": "this run", "seeds": 1}, *baselines]:
        cells = (f"{v:.4f}" if isinstance(v, float) else "–" for v in map(b.get, cols))
        lines.append(f"| {b['model']} | {b['source']} | {b['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- a run


def evaluate_run(
    run: str | Path,
    *,
    split: str = "test",
    beams: int = 20,
    batch_size: int = 32,
    which: str = "best",
    runs_dir: str | Path = "runs",
    max_rows: int = 0,
    progress: bool = True,
    threads: int = 0,
    device: Any = "cpu",
    baselines_file: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate the ``which`` (best | last) model of an SFT run on ``split`` on ``device``; writes
    and returns the results (see the module docstring)."""
    from rl4rec.genrec.artifacts import load_sft_run
    from rl4rec.genrec.latent.evaluate import row_groups
    from rl4rec.runs import atomic_write_text
    from rl4rec.seeding import apply_threads

    apply_threads(threads)
    loaded = load_sft_run(run, which, str(runs_dir))
    run_dir, cfg, model, tok, meta, ds = loaded.run_dir, loaded.cfg, loaded.model.to(device), loaded.tokenizer, loaded.meta, loaded.dataset
    builder, trie = loaded.builder, loaded.trie
    examples = ds.split(split)[: max_rows or None]  # max_rows=0: every row
    pred = predict(
        model, tok, trie, builder, examples, beams=beams, batch_size=batch_size, max_len=cfg.max_len,
        progress=progress, check=valid_completions(tok, ds.catalog),
    )
    groups = row_groups(ds.train, examples, len(ds.catalog), n_groups=cfg.popularity_groups)
    targets = [e.target_item_id for e in examples]
    metrics, ranks = compute_metrics(pred, targets, trie.item_sid.numpy(), num_sids=trie.num_sids, groups=groups)
    baselines = baseline_results(ds.name, ds.train_recipe, split, len(examples), runs_dir=runs_dir, bench_json=baselines_file)
    result = {
        "run_dir": str(run_dir),
        "model": which,
        "dataset": ds.name,
        "train_recipe": ds.train_recipe,
        "split": split,
        "hit_rule": "a generated SID is a hit when it equals the target item's SID (items sharing a SID all count)",
        "metrics": metrics,
        "prompt_tokens_mean": float(pred.prompt_tokens.mean()) if len(examples) else 0.0,
        "truncated_rows": pred.truncated,
        "eval_s": pred.seconds,
        "rows_per_s": len(examples) / pred.seconds if pred.seconds else float("nan"),
        "baselines": baselines,
        "model_meta": meta,
    }
    out_dir = run_dir / "eval" / f"{split}-b{beams}-{which}"
    out_dir.mkdir(parents=True, exist_ok=True)
    c = ds.catalog
    lines = []
    for i, e in enumerate(examples):
        lines.append(json.dumps({
            "user": e.user_id,
            "source": e.source,
            "target": e.target_item_id,
            "target_sid": c.sid(e.target_item_id),
            "candidates": pred.items[i].tolist(),
            "candidate_sids": [c.sid(int(j)) if j >= 0 else None for j in pred.items[i]],
            "scores": [round(float(s), 5) for s in pred.scores[i]],
            "rank": int(ranks[i]) if ranks[i] < beams else None,
        }))
    atomic_write_text(out_dir / "predictions.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2))
    result["table"] = comparison_table(metrics, baselines)
    atomic_write_text(out_dir / "comparison.md", result["table"] + "\n")
    result["out_dir"] = str(out_dir)
    return result


def format_eval(result: dict[str, Any]) -> str:
    m = result["metrics"]
    lines = [
        f"{result['dataset']} {result['split']} ({m['rows']} rows, {m['beams']} beams, {result['eval_s']:.1f}s, "
        f"{result['rows_per_s']:.1f} rows/s): invalid {m['invalid_rate']:.4f}, duplicate {m['duplicate_rate']:.4f}, "
        f"ambiguous hits {m['ambiguous_hits']}, truncated prompts {result['truncated_rows']}",
        result["table"],
        f"written to {result['out_dir']}",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class EvalConfig(RunConfig):
    """``rl4rec genrec eval RUN [key=value ...]``: test (or validate) a trained SFT/GRPO run."""

    run: str = field("", "the run: folder, EXPERIMENT/NAME or a unique run name under runs_dir")
    split: Literal["test", "valid", "train"] = field("test", "which rows")
    beams: int = field(20, "beams = candidates per row; metrics use K <= beams", ge=1)
    batch_size: int = field(32, "prompts per beam search", ge=1)
    which: Literal["best", "last"] = field("best", "which saved model of the run")
    max_rows: int = field(0, "evaluate only the first N rows (0 = all)", ge=0)
    device: Literal["auto", "cpu", "cuda"] = field("auto", "auto: CUDA when visible, else CPU; cuda where none is visible is an error")
    baselines_file: str = field("", "a benchmark JSON of baselines on the same split shown in the table (e.g. benchmarks/results/genrec_baselines.json)")

    def check(self) -> None:
        super().check()
        from rl4rec.devices import check_device_keys

        check_device_keys(self.device)
        if not self.run:
            raise ConfigError("run: name the run to evaluate (rl4rec genrec eval RUN)")


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """:func:`evaluate_run` from a config (what ``rl4rec genrec eval`` runs)."""
    from rl4rec.devices import resolve_device

    return evaluate_run(
        cfg.run, split=cfg.split, beams=cfg.beams, batch_size=cfg.batch_size, which=cfg.which, runs_dir=cfg.runs_dir,
        max_rows=cfg.max_rows, progress=cfg.progress, threads=cfg.threads, device=resolve_device(cfg.device), baselines_file=cfg.baselines_file or None,
    )
