"""Claim: one rl4rec GRPO step takes at most half the time of TRL's GRPOTrainer step on the same
tiny model, 8 prompts x 16 completions, one thread (issue: TRL measured at 0.67-0.72 s/step).

Both start from the same SFT model (a tiny Qwen2-style LM trained briefly on the synthetic
catalog by ``rl4rec genrec grpo --smoke``'s SFT stage) and run in this process, one after the
other, with ``torch.set_num_threads(1)``:

- TRL ``GRPOTrainer``: unconstrained sampling of 5 new tokens (a SID answer is 3 SID tokens,
  ``"\\n"`` and EOS), the exact-match reward, beta 1e-3, one optimizer step per generation batch.
- rl4rec ``train_grpo``: trie-constrained sampling (``rollout=sample``) and beam rollouts
  (``rollout=beam``), rule reward, beta 1e-3, reference model on.

Seconds per step are the median over steps 3..N (warm-up excluded); validation is not timed.

    python benchmarks/bench_grpo_step.py [--steps 12]    # needs the trl extra: pip install 'rl4rec[trl]'
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "grpo_step.json"
PROMPTS, G = 8, 16


def rl4rec_steps(runs: Path, init: Path, rollout: str, steps: int) -> list[float]:
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.grpo.config import GRPOConfig
    from rl4rec.genrec.grpo.trainer import train_grpo

    cfg = apply_overrides(GRPOConfig, {}, [
        f"init_from={init}", f"runs_dir={runs}", "experiment=bench", f"run_name={rollout}", "threads=1", "progress=false",
        "tracking.backends=[]", "tasks.title2sid=0", "tasks.seq_title2sid=0", f"rollout={rollout}", f"group_size={G}",
        f"prompts_per_step={PROMPTS}", f"rollout_batch={PROMPTS}", f"micro_batch={PROMPTS}", f"max_steps={steps}", "rewards={rule: 1.0}",
        "beta=1e-3", "lr=1e-5", "eval_at_start=false", "eval_rows=10", "eval_beams=5", "select_metric=hr@1", "ks=[1]", "test_at_end=false",
    ])
    res = train_grpo(cfg)
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return [r["perf/step_s"] for r in rows if "perf/step_s" in r]


def trl_steps(init: Path, steps: int) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rl4rec.genrec.artifacts import load_sft_run

    loaded = load_sft_run(init)
    b, c = loaded.builder, loaded.dataset.catalog
    rows = [{"prompt": b.render("seq_sid2sid", e.history), "target": c.sid(e.target_item_id)} for e in loaded.dataset.train[: PROMPTS * (steps + 2)]]
    model = AutoModelForCausalLM.from_pretrained(str(Path(loaded.run_dir) / "model" / "best"), local_files_only=True)
    tok = loaded.tokenizer

    def exact_match(completions, target, **_):
        return [1.0 if comp.strip().strip('"') == t else 0.0 for comp, t in zip(completions, target, strict=True)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_step_begin(self, *a, **k):
            self._t = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self._t)

    timer = Timer()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=PROMPTS * G, num_generations=G, max_completion_length=5, max_steps=steps,
            learning_rate=1e-5, beta=1e-3, temperature=1.0, use_cpu=True, report_to="none", logging_steps=1, save_strategy="no",
            disable_tqdm=True, seed=0, dataloader_num_workers=0, bf16=False,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=exact_match, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[timer])
        trainer.train()
    return timer.times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from rl4rec.genrec.smoke import sid_smoke

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        sid_smoke(runs, ["max_steps=1", "test_at_end=false", "eval_at_start=false"])  # trains the shared SFT model
        init = runs / "grpo-smoke" / "sft"
        times = {"trl_grpo_trainer": trl_steps(init, args.steps)}
        for rollout in ("sample", "beam"):
            times[f"rl4rec_{rollout}"] = rl4rec_steps(runs, init, rollout, args.steps)
    med = {k: statistics.median(v[2:]) for k, v in times.items()}
    result = {
        "claim": __doc__.split("\n\n")[0],
        "command": "python benchmarks/bench_grpo_step.py",
        "setup": {"prompts": PROMPTS, "group_size": G, "threads": 1, "steps": args.steps, "timed": "median of steps 3..N"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "seconds_per_step": med,
        "ratio_vs_trl": {k: v / med["trl_grpo_trainer"] for k, v in med.items()},
        "raw": times,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print("| trainer | s/step | vs TRL |\n|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {v / med['trl_grpo_trainer']:.2f}x |")


if __name__ == "__main__":
    main()
