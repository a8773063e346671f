"""On a CUDA machine (``-m gpu``; skipped elsewhere): slate training, re-test and pretraining put
the simulator, the agent, the replay buffer and the generators on the GPU and give finite numbers.
``make gpu-check`` runs the same pipelines from the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rl4rec.config import apply_overrides
from rl4rec.slate.train import SlateTask, SlateTrainConfig, retest_run
from rl4rec.training import fit

pytestmark = pytest.mark.gpu

FAST = ["threads=1", "progress=false", "tracking.backends=[]", "val_users=50", "test_users=100", "steps=30",
        "random_steps=10", "eval_every=15", "seeds=[1,2]", "device=cuda"]


def _tensors(module: torch.nn.Module):
    yield from module.parameters()
    yield from module.buffers()


@pytest.mark.parametrize("agent,ranker", [("sac", "gems"), ("sac", "topk_ideal"), ("sac", "wknn"), ("reinforce", "softmax"), ("slateq", "none")])
def test_slate_task_lives_on_the_gpu(tmp_path, shared_data, agent, ranker):
    extra = ["pretrain.sessions=300", "pretrain.epochs=1"] if ranker == "gems" else []
    cfg = apply_overrides(SlateTrainConfig, {}, [f"runs_dir={tmp_path}", *FAST, f"agent={agent}", f"ranker={ranker}", "buffer_capacity=100", *extra])
    seen = {}

    def build(run, dev):
        seen["task"] = task = SlateTask(cfg, run, dev)
        return task

    result = fit(cfg, build, key_metric="test/return")
    task = seen["task"]
    assert all(t.device.type == "cuda" for t in _tensors(task.agent))
    assert all(g.device.type == "cuda" for g in task.agent.generators().values())
    assert task.sim.item_embeddings.device.type == "cuda" and task.buffer.rewards.device.type == "cuda"
    assert result["devices"]["device"].startswith("cuda")
    per_seed = result["test/return_per_seed"]
    assert all(math.isfinite(v) for v in per_seed.values()) and task.buffer.size == min(30, task.buffer.capacity)
    again = retest_run(task.run.dir, device="cuda")
    assert again["test/return_per_seed"] == pytest.approx(per_seed, rel=1e-5)


def test_pretraining_runs_on_the_gpu(tmp_path, shared_data):
    from rl4rec.slate.pretrain import SlatePretrainConfig, pretrain_ranker

    common = [f"runs_dir={tmp_path}", "threads=1", "progress=false", "tracking.backends=[]", "device=cuda", "pretrain.sessions=300"]
    gems = pretrain_ranker(apply_overrides(SlatePretrainConfig, {}, [*common, "ranker=gems", "pretrain.epochs=1", "seeds=[1,2]"]))
    assert gems["devices"]["device"].startswith("cuda") and math.isfinite(gems["eval/gems_val_loss"])
    assert gems["eval/gems_val_loss"] < gems["eval/gems_val_loss_initial"]
    mf = pretrain_ranker(apply_overrides(SlatePretrainConfig, {}, [*common, "ranker=mf", "mf.max_epochs=2", "run_name=mf"]))
    assert mf["devices"]["device"].startswith("cuda") and math.isfinite(mf["eval/mf_val_loss"])
    state = torch.load(gems["gems_checkpoint"], map_location="meta", weights_only=True)
    assert json.dumps(sorted(state)) == json.dumps(["center", "env", "gems", "scale", "seeds"])
