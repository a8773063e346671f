"""On a CUDA machine (``-m gpu``; skipped elsewhere): the genrec trainers put parameters and
batches on the GPU, autocast in bf16 where supported, and give finite numbers. ``make gpu-check``
runs every pipeline end to end from the CLI; these are the in-process checks."""

from __future__ import annotations

import math

import pytest
import torch

from rl4rec.config import apply_overrides
from rl4rec.training import fit

pytestmark = pytest.mark.gpu

FAST = ["threads=1", "progress=false", "tracking.backends=[]", "prompt.preamble=false", "tokenizer.vocab_size=400"]


def _precision() -> str:
    return "bf16" if torch.cuda.is_bf16_supported() else "no"


def test_sft_task_lives_on_the_gpu(tmp_path, synthetic_dir):
    from rl4rec.genrec.sft import SFTConfig, SFTTask

    cfg = apply_overrides(SFTConfig, {}, [f"dataset={synthetic_dir}", f"runs_dir={tmp_path}", *FAST, "max_steps=4", "eval_every=4",
                                          "eval_rows=20", "eval_beams=5", "select_metric=ndcg@5", "test_beams=5", "device=cuda",
                                          f"mixed_precision={_precision()}"])
    seen = {}

    def build(run, dev):
        task = SFTTask(cfg, run, dev)
        seen["task"] = task
        return task

    result = fit(cfg, build)
    params = list(seen["task"].model.parameters())
    assert all(p.device.type == "cuda" for p in params)
    assert result["devices"]["device"].startswith("cuda") and result["devices"]["mixed_precision"] == _precision()
    assert all(math.isfinite(v) for v in result["test"].values() if isinstance(v, float))


def test_baseline_trains_on_the_gpu(tmp_path, synthetic_dir):
    from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline

    cfg = apply_overrides(BaselineConfig, {}, [f"dataset={synthetic_dir}", f"runs_dir={tmp_path}", "threads=1", "progress=false",
                                               "tracking.backends=[]", "epochs=2", "device=cuda"])
    result = train_baseline(cfg)
    assert result["devices"]["device"].startswith("cuda") and math.isfinite(result["test"]["ndcg@10"])
