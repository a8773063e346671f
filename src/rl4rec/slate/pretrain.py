"""``rl4rec slate pretrain --ranker gems|mf``: GeMS or MF embeddings from logged data, as a run.

The run directory holds ``gems.pt`` (per-seed GeMS weights and action box; pass it to training as
``gems_checkpoint=<run>/gems.pt``) or ``mf_<env>.npy`` (pass as ``mf_embeddings=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from rl4rec.config import ConfigError, field
from rl4rec.slate.env.config import check_env_key, variant_config
from rl4rec.slate.rankers.gems import GeMS, GeMSConfig
from rl4rec.slate.rankers.mf import MFConfig, train_mf
from rl4rec.slate.rankers.pretrain import PretrainConfig, pretrain_on_logs
from rl4rec.training import DeviceConfig


@dataclass(frozen=True)
class SlatePretrainConfig(DeviceConfig):
    """Pretraining of a ranker on logged sessions."""

    NAME_KEYS = ("ranker", "env")

    experiment: str = field("slate_pretrain", "experiment name")
    ranker: Literal["gems", "mf"] = field("gems", "what to pretrain", short="")
    env: str = field("focused_topdown", "TopicRec variant", short="")
    env_mode: Literal["faithful", "fixed"] = field("faithful", "simulator behaviour", short="env")
    logs: str = field("", "logged-data folder from `rl4rec slate generate-logs` (empty: generate pretrain.sessions here)")
    seeds: tuple[int, ...] = field((), "GeMS: one model per seed, trained together (empty: just `seed`)")
    gems: GeMSConfig = field(default_factory=GeMSConfig, help="GeMS architecture and loss")
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, help="GeMS pretraining budget")
    mf: MFConfig = field(default_factory=MFConfig, help="MF hyperparameters")

    def check(self) -> None:
        super().check()
        if self.mixed_precision != "no":
            raise ConfigError("mixed_precision: slate pretraining computes in fp32 only; use mixed_precision=no")
        check_env_key(self.env)


def pretrain_ranker(cfg: SlatePretrainConfig) -> dict:
    from rl4rec.devices import resolve_device
    from rl4rec.runs import Run, atomic_save_npy
    from rl4rec.slate.logs import cached_logs, load_logs
    from rl4rec.slate.rankers.gems_cache import save_gems

    seeds = cfg.seeds or (cfg.seed,)
    device = resolve_device(cfg.device)
    with Run(cfg, key_metric="eval/gems_val_loss" if cfg.ranker == "gems" else "eval/mf_val_loss") as run:
        if cfg.logs:
            logs = load_logs(cfg.logs, env=cfg.env)
        else:
            env_cfg = variant_config(cfg.env, mode=cfg.env_mode)
            logs = cached_logs(run.dir / "logs", env_cfg, cfg.pretrain.sessions, seed=cfg.pretrain.logs_seed, progress=cfg.progress)
        num_items = int(logs.meta["num_items"])
        if cfg.ranker == "mf":
            table, summary = train_mf(np.asarray(logs.slates), np.asarray(logs.clicks), num_items, cfg.mf, seed=cfg.seed, progress=cfg.progress, device=device)
            path = run.dir / f"mf_{cfg.env}.npy"
            atomic_save_npy(path, table.astype(np.float32))
            result = {"eval/mf_val_loss": summary["best_val_loss"], "mf_embeddings": str(path), **summary}
        else:
            gems = GeMS(seeds, num_items, logs.slates.shape[-1], cfg.gems).to(device)  # initialised on the CPU, the same on every device
            history, center, scale = pretrain_on_logs(
                gems, logs, cfg.pretrain, seed=seeds[0], log_fn=run.log_metrics, progress=cfg.progress, check_stop=run.check_stop
            )
            path = run.dir / "gems.pt"
            save_gems(path, gems, center, scale, seeds=seeds, env=cfg.env)
            result = {"eval/gems_val_loss": min(history["val"]), "eval/gems_val_loss_initial": history["val"][0], "gems_checkpoint": str(path)}
        result["devices"] = {"device": str(device), "processes": 1, "mixed_precision": "no"}
        run.write_result("results.json", result)
        return result


def checkpoint_path(path: str) -> Path:
    """``gems_checkpoint`` may name the .pt file or the pretraining run directory."""
    p = Path(path)
    return p / "gems.pt" if p.is_dir() else p
