"""Loading what a trained genrec run left behind: its model, tokenizer, data and prompts.

Used by evaluation (``rl4rec genrec eval``), by GRPO (which starts from an SFT run) and by the CF
reward. A module of its own so that evaluating and training never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl4rec.genrec.sft_config import SFTConfig

__all__ = ["LoadedRun", "load_sft_dataset", "sft_run_of", "load_sft_run"]


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


def sft_run_of(run_dir) -> Path:
    """The SFT run that defines a run's data, prompts and tokenizer: the run itself, or for a GRPO
    run the SFT run it started from (recorded in its ``init_run.json``)."""
    from rl4rec.runs import RunDir

    init = RunDir(run_dir).read_init_run()
    return Path(init["run_dir"]) if init else Path(run_dir)


def load_sft_run(run, which: str = "best", runs_dir: str = "runs") -> LoadedRun:
    """Load an SFT run, or a GRPO run with its SFT run's data and prompts (a folder,
    ``EXPERIMENT/NAME`` or a unique name under ``runs_dir``); the model is the run's own."""
    from rl4rec.genrec.decoding import ItemTrie
    from rl4rec.genrec.model import load_model_dir
    from rl4rec.genrec.prompts import PromptBuilder
    from rl4rec.runs import RunDir, config_of, find_run

    run_dir = find_run(Path(runs_dir), str(run))
    cfg = config_of(SFTConfig, sft_run_of(run_dir))
    model, tok, meta = load_model_dir(RunDir(run_dir).model(which))  # <run_dir>/model/<which>
    ds = load_sft_dataset(cfg)
    return LoadedRun(run_dir, cfg, model, tok, meta, ds, PromptBuilder(ds.catalog, cfg.prompt, ds.name), ItemTrie.from_catalog(ds.catalog, tok))
