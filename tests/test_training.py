"""The one loop (rl4rec.training.fit) on a scripted task: validation cadence, best selection,
patience, stops, resume and the shared keys, each checked against hand-worked expectations."""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass

import pytest
import torch

from rl4rec.config import ConfigError, apply_overrides, field
from rl4rec.runs import load_checkpoint, read_status
from rl4rec.training import LoopConfig, Task, TrainingConfig, default, fit, lr_lambda


@dataclass(frozen=True)
class ToyConfig(LoopConfig):
    experiment: str = field("toy", "experiment name")
    steps: int = field(10, "steps", ge=0)
    eval_every: int = default(LoopConfig, "eval_every", 2)
    scores: tuple[float, ...] = field((), "validation score at each validation, in order (scripted)")


class ToyTask(Task):
    """Counts steps; validation returns the scripted scores; state = the counter and a generator."""

    def __init__(self, cfg: ToyConfig, run, dev):
        self.cfg, self.run = cfg, run
        self.total_steps, self.eval_every, self.select_key, self.name = cfg.steps, cfg.eval_every, "valid/score", "toy"
        self.counter, self.validations = 0, 0
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.draws: list[float] = []

    def train_step(self, step: int) -> dict[str, float]:
        self.counter += 1
        # the global RNG (as dropout would) and the task's own generator both advance each step
        self.draws.append(random.random() + torch.rand(1).item() + torch.rand(1, generator=self.gen).item())
        return {"train/counter": float(self.counter)}

    def validate(self, step: int) -> dict[str, float]:
        score = self.cfg.scores[self.validations]
        self.validations += 1
        return {"valid/score": score}

    def state_dict(self):
        return {"counter": self.counter, "validations": self.validations, "gen": self.gen.get_state(), "draws": torch.tensor(self.draws, dtype=torch.float64)}

    def load_state_dict(self, state):
        self.counter, self.validations = int(state["counter"]), int(state["validations"])
        self.gen.set_state(state["gen"])
        self.draws = state["draws"].tolist()

    def test(self, loop):
        return {"test/counter": self.counter, "draws": self.draws}


def _cfg(tmp_path, *extra):
    return apply_overrides(ToyConfig, {}, [f"runs_dir={tmp_path}", "progress=false", "tracking.backends=[]", "threads=1", *extra])


def _fit(cfg):
    return fit(cfg, lambda run, dev: ToyTask(cfg, run, dev), key_metric="valid/score")


def _lines(tmp_path, name="r"):
    return [json.loads(x) for x in (tmp_path / "toy" / name / "metrics.jsonl").read_text().splitlines()]


def test_validation_cadence_best_selection_and_result(tmp_path):
    res = _fit(_cfg(tmp_path, "run_name=r", "scores=[0.1, 0.5, 0.3, 0.5, 0.2]"))
    # validations at steps 2, 4, 6, 8, 10; the best is the first 0.5 (a tie is no improvement)
    assert [r["step"] for r in _lines(tmp_path) if "valid/score" in r] == [2, 4, 6, 8, 10]
    assert res["best_step"] == 4 and res["best_valid"] == {"score": 0.5} and res["steps"] == 10 and not res["early_stopped"]
    assert res["test/counter"] == 10 and res["devices"] == {"device": "cpu", "processes": 1, "mixed_precision": "no"}
    best = load_checkpoint(tmp_path / "toy" / "r" / "checkpoints" / "best.pt")
    assert best["step"] == 4 and best["task"]["counter"] == 4
    assert json.loads((tmp_path / "toy" / "r" / "test_results.json").read_text())["best_step"] == 4


def test_patience_stops_right_after_the_validation_that_exhausts_it(tmp_path):
    res = _fit(_cfg(tmp_path, "run_name=r", "patience=2", "scores=[0.4, 0.3, 0.2, 0.9, 0.9]"))
    # best at step 2, no improvement at 4 and 6: stop at step 6, before step 7 runs
    assert res["early_stopped"] and res["steps"] == 6 and res["test/counter"] == 6 and res["best_step"] == 2
    again = _fit(_cfg(tmp_path, "run_name=r", "patience=2", "scores=[0.4, 0.3, 0.2, 0.9, 0.9]", "resume=true"))
    assert again["steps"] == 6 and again["test/counter"] == 6  # a resumed early-stopped run trains no further


def test_eval_at_start_validates_step_0_and_min_mode(tmp_path):
    class Lower(ToyTask):
        select_mode = "min"

    cfg = _cfg(tmp_path, "run_name=r", "eval_at_start=true", "steps=4", "scores=[0.5, 0.7, 0.4]")
    res = fit(cfg, lambda run, dev: Lower(cfg, run, dev))
    assert res["start_valid"] == {"valid/score": 0.5} and res["best_step"] == 4 and res["best_valid"] == {"score": 0.4}


def test_stop_then_resume_equals_the_uninterrupted_run(tmp_path):
    scores = "scores=[0.1, 0.2, 0.3, 0.4, 0.5]"
    full = _fit(_cfg(tmp_path, "run_name=full", scores))
    assert _fit(_cfg(tmp_path, "run_name=cut", scores, "stop_at_step=5")) is None
    run_dir = tmp_path / "toy" / "cut"
    assert read_status(run_dir)["status"] == "stopped" and load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 5
    again = _fit(_cfg(tmp_path, "run_name=cut", scores, "resume=true"))
    # the RNGs (global and the task's) continue where they stopped: the same draws, bit for bit
    assert again["draws"] == full["draws"] and again["best_step"] == full["best_step"] == 10
    strip = [{k: v for k, v in r.items() if not k.startswith("perf/") and k != "time"} for r in _lines(tmp_path, "cut")]
    assert strip == [{k: v for k, v in r.items() if not k.startswith("perf/") and k != "time"} for r in _lines(tmp_path, "full")]


def test_save_every_and_keep_every(tmp_path):
    _fit(_cfg(tmp_path, "run_name=r", "steps=9", "eval_every=9", "save_every=4", "keep_every=3", "scores=[1.0]"))
    names = sorted(p.name for p in (tmp_path / "toy" / "r" / "checkpoints").iterdir())
    assert names == ["best.pt", "last.pt", "step_3.pt", "step_6.pt", "step_9.pt"]


def test_device_cuda_without_a_gpu_is_a_one_line_config_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(ConfigError, match=r"^device=cuda: no CUDA device is visible"):
        _cfg(tmp_path, "device=cuda")
    with pytest.raises(ConfigError, match="mixed_precision=fp16 needs a CUDA device"):
        _cfg(tmp_path, "mixed_precision=fp16")


def test_shared_keys_are_declared_once_and_defaults_change_in_place():
    from rl4rec.genrec.sft_config import SFTConfig

    names = [f.name for f in dataclasses.fields(TrainingConfig)]
    for key in ("lr", "weight_decay", "warmup_steps", "schedule", "grad_clip", "eval_every", "select_metric", "patience", "keep_every",
                "test_at_end", "device", "mixed_precision"):
        assert key in names
    sft = {f.name: f for f in dataclasses.fields(SFTConfig)}
    assert sft["lr"].default == 1e-3 and sft["lr"].metadata["gt"] == 0.0  # bounds kept from the declaration
    assert sft["warmup_steps"].default == 20 and sft["grad_clip"].default == 1.0


def test_lr_lambda_by_hand():
    f = lr_lambda(warmup=4, schedule="linear", total=14)
    assert [f(s) for s in (0, 3)] == [1 / 5, 4 / 5]
    assert f(4) == 1.0 and f(9) == 0.5 and f(14) == 0.0
    c = lr_lambda(warmup=0, schedule="cosine", total=10, floor=0.1)
    assert c(0) == pytest.approx(1.0) and c(5) == pytest.approx(0.55) and c(10) == pytest.approx(0.1)
    assert lr_lambda(2, "constant", 10)(7) == 1.0
