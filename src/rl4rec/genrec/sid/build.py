"""``rl4rec genrec build-sids``: catalog text -> embeddings -> codes -> collision handling -> index.json.

    rl4rec genrec build-sids --dataset Industrial_and_Scientific --method rqkmeans --encoder minilm --out sids/ind

writes into ``--out``: ``<C>.index.json`` (load it with ``load_dataset(..., sid_index=...)``),
``sid_report.json`` (codebook usage per level, collisions before/after handling, residual MSE,
times) and the cached embeddings. ``--method provided`` reports on (and optionally dedups) the
folder's own ``index.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rl4rec.config import ConfigError, field, to_dict
from rl4rec.genrec.sid.codec import SIDCodec, add_extra_level, reassign_last_level
from rl4rec.genrec.sid.rqvae import RQVAEConfig

log = logging.getLogger(__name__)

__all__ = ["SIDBuildConfig", "build_sids"]

Method = Literal["rqkmeans", "rqkmeans_balanced", "rqvae", "provided"]


@dataclass(frozen=True)
class SIDBuildConfig:
    """Options of ``rl4rec genrec build-sids`` (flags ``--dataset/--method/...`` set the same keys)."""

    dataset: str = field("Industrial_and_Scientific", "category name or folder")
    data_dir: str = field("", "folder holding category folders (empty: the default search path)")
    method: Method = field("rqkmeans", "rqkmeans | rqkmeans_balanced | rqvae | provided (the folder's index.json)")
    encoder: str = field("minilm", "minilm | hash | hash:DIM | a local sentence-transformers / HF model folder")
    embeddings: str = field(
        "", "item embeddings to quantize instead of encoding text: a .npy with one row per item, in id order (e.g. SASRec's table)"
    )
    out: str = field("", "output folder (empty: sids/<dataset>-<method>-<encoder>)")
    levels: int = field(3, "SID levels before collision handling", ge=1, le=8)
    codebook_size: int = field(256, "codes per level", ge=2)
    iters: int = field(50, "k-means iterations per level", ge=1)
    seed: int = field(42, "seed of k-means / RQ-VAE (level l uses seed + l)", ge=0)
    dedup: Literal["extra_level", "last_level", "none"] = field(
        "extra_level",
        "collision handling: extra_level (one more level, <d_0> when unique), last_level (move colliding "
        "items to free last-level codes, then an extra level if any remain), none (keep collisions)",
    )
    encode_batch_size: int = field(64, "texts per encoder batch", ge=1)
    cache_dir: str = field("", "embedding cache folder (empty: the output folder)")
    threads: int = field(0, "torch threads (0 = all cores)", ge=0)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig, help="RQ-VAE architecture and budget (method=rqvae)")

    def check(self) -> None:
        if self.embeddings and self.method == "provided":
            raise ConfigError("embeddings: method=provided reads the folder's SIDs and quantizes nothing; use rqkmeans or rqvae")
        if self.method == "provided" and self.dedup == "last_level":
            raise ConfigError("dedup=last_level needs the quantizer's residuals; with method=provided use extra_level or none")

    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        enc = Path(self.embeddings).stem if self.embeddings else Path(self.encoder).name.replace(":", "")
        return Path("sids") / f"{Path(self.dataset).name}-{self.method}-{enc}"


def load_item_embeddings(path: str | Path, num_items: int):
    """A float32 ``(num_items, d)`` table from a .npy file; any other shape is an error naming the file."""
    import numpy as np

    from rl4rec.errors import InputError

    if not Path(path).is_file():
        raise InputError(f"embeddings: {path} is not a file")
    table = np.load(path, allow_pickle=False)
    if table.ndim != 2 or table.shape[0] != num_items or not np.issubdtype(table.dtype, np.floating):
        raise InputError(f"embeddings: {path} must be a float ({num_items}, d) array, one row per item; got {table.dtype} {table.shape}")
    return table.astype(np.float32)


def build_sids(cfg: SIDBuildConfig) -> dict[str, Any]:
    """Build, dedup and write SIDs; returns the report (also written as ``sid_report.json``)."""
    from rl4rec.genrec.data import ItemCatalog, resolve_dataset_dir
    from rl4rec.seeding import apply_threads

    apply_threads(cfg.threads)
    t_start = time.perf_counter()
    directory, name = resolve_dataset_dir(cfg.dataset, cfg.data_dir or None)
    catalog = ItemCatalog.from_dir(directory, name)
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    sizes = (cfg.codebook_size,) * cfg.levels
    times: dict[str, float] = {}
    report: dict[str, Any] = {
        "dataset": name,
        "directory": str(directory),
        "items": len(catalog),
        "method": cfg.method,
        "config": to_dict(cfg),
    }
    residuals = last_book = None
    if cfg.method == "provided":
        if catalog.sids is None:
            raise FileNotFoundError(f"{directory} has no {name}.index.json (or SID column in info.txt) to use with method=provided")
        codec = SIDCodec(catalog.sids.codes, [max(k, cfg.codebook_size) for k in catalog.sids.codebook_sizes])
    else:
        t0 = time.perf_counter()
        if cfg.embeddings:
            emb, source = load_item_embeddings(cfg.embeddings, len(catalog)), f"embeddings:{cfg.embeddings}"
        else:
            from rl4rec.genrec.sid.text import embed_items, make_encoder

            encoder = make_encoder(cfg.encoder)
            emb = embed_items(catalog, encoder, cache_dir=cfg.cache_dir or out, batch_size=cfg.encode_batch_size)
            source = encoder.name
        times["embed_s"] = time.perf_counter() - t0
        report.update(encoder=source, embedding_dim=int(emb.shape[1]))
        t0 = time.perf_counter()
        if cfg.method in ("rqkmeans", "rqkmeans_balanced"):
            from rl4rec.genrec.sid.rqkmeans import residual_kmeans

            rq = residual_kmeans(emb, sizes, balanced=cfg.method == "rqkmeans_balanced", iters=cfg.iters, seed=cfg.seed)
            codec = SIDCodec(rq.codes, sizes)
            residuals, last_book = rq.level_inputs[-1], rq.codebooks[-1]
            report["residual_mse_per_level"] = rq.residual_mse
            report["reconstruction_mse"] = rq.residual_mse[-1]
        else:
            import torch

            from rl4rec.genrec.sid.rqvae import train_rqvae

            model, train_log = train_rqvae(emb, sizes, cfg.rqvae, seed=cfg.seed)
            codes, residuals = model.encode_codes(torch.as_tensor(emb))
            codec = SIDCodec(codes, sizes)
            last_book = model.codebooks[-1].detach().numpy()
            with torch.no_grad():
                _, recon, _ = model(torch.as_tensor(emb))
            report["reconstruction_mse"] = float(((recon.numpy() - emb) ** 2).sum(1).mean())
            report["rqvae"] = train_log
        times["quantize_s"] = time.perf_counter() - t0

    report["before"] = {**codec.collisions(), "usage": codec.usage()}
    t0 = time.perf_counter()
    final = codec
    if cfg.dedup == "last_level":
        final = reassign_last_level(final, residuals, last_book)
        report["after_last_level"] = final.collisions()
    # extra_level: always (uniform length even without collisions); last_level: only for leftovers
    if cfg.dedup == "extra_level" or (cfg.dedup == "last_level" and final.collisions()["collision_rate"] > 0):
        final = add_extra_level(final)
    times["dedup_s"] = time.perf_counter() - t0
    report["after"] = {**final.collisions(), "usage": final.usage(), "levels": final.num_levels, "tokens": len(final.vocabulary())}
    times["total_s"] = time.perf_counter() - t_start
    report["time"] = times
    index_path = final.save_index_json(out / f"{name}.index.json")
    report["index_json"] = str(index_path)
    (out / "sid_report.json").write_text(json.dumps(report, indent=2))
    log.info(
        "SIDs for %s (%s): collision rate %.4f -> %.4f, %d levels, written to %s",
        name, cfg.method, report["before"]["collision_rate"], report["after"]["collision_rate"], final.num_levels, index_path,
    )
    return report


def summarize(report: dict[str, Any]) -> str:
    """A few readable lines of a build report."""
    b, a = report["before"], report["after"]
    usage = ", ".join(f"{u['level']} {u['codes_used']}/{u['codebook_size']}" for u in b["usage"])
    lines = [
        f"{report['dataset']}: {report['items']} items, method {report['method']}"
        + (f", encoder {report['encoder']} (d={report['embedding_dim']})" if "encoder" in report else ""),
        f"codes used per level: {usage}",
        f"collisions before: rate {b['collision_rate']:.4f}, {b['colliding_groups']} groups, "
        f"{b['items_in_colliding_groups']} items, largest {b['largest_group']}",
        f"collisions after ({report['config']['dedup']}): rate {a['collision_rate']:.4f}, {a['levels']} levels, {a['tokens']} tokens",
        "time: " + ", ".join(f"{k} {v:.1f}" for k, v in report["time"].items()),
        f"index: {report['index_json']}",
    ]
    return "\n".join(lines)
