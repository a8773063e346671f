"""GRPO of a semantic-ID recommender with Hugging Face TRL's ``GRPOTrainer``, using rl4rec's reward,
item trie and data (``pip install 'rl4rec[trl]'``).

    python examples/trl_grpo_sid.py                       # synthetic catalogue: a 60-step SFT model first (seconds)
    python examples/trl_grpo_sid.py --init RUN --steps 200 --group-size 16 --prompts 64 --lr 2e-4

``RUN`` is any rl4rec SFT run, e.g. Industrial_and_Scientific's:
``rl4rec genrec sft --config configs/genrec/sft_industrial.yaml`` (then ``--init`` its run folder).
The model is validated before and after with rl4rec's constrained beam search (the metric
``rl4rec genrec grpo`` selects on), and saved under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall seconds of every optimizer step (generation, rewards and update included)."""

        def __init__(self):
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ARG002
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ARG002
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def quiet_logs(trainer) -> None:
    """Keep TRL's progress bar but not the metrics dict it prints every logging step (the log
    stays in ``trainer.state.log_history``)."""
    from transformers import PrinterCallback, ProgressCallback

    class Bar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002
            pass

    had_bar = any(isinstance(c, ProgressCallback) for c in trainer.callback_handler.callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if had_bar:
        trainer.add_callback(Bar())


def validate(loaded, model, rows: int, beams: int = 10) -> dict[str, float]:
    from rl4rec.genrec.evaluate import validation_metrics

    examples = loaded.dataset.valid[:rows]
    m = validation_metrics(model.eval(), loaded.tokenizer, loaded.trie, loaded.builder, examples, beams=beams, batch_size=64,
                           max_len=loaded.cfg.max_len, ks=(1, 5, 10))
    return {k: v for k, v in m.items() if "@" in k or k.endswith("invalid_rate")}


def train(loaded, *, out: Path, steps: int, prompts: int, group_size: int, lr: float, beta: float, reward: str,
          trie: bool = True, seed: int = 0, temperature: float = 1.0, loss_type: str = "grpo", progress: bool = True) -> dict:
    """``steps`` GRPOTrainer steps of ``prompts`` x ``group_size`` completions on the run's train
    rows (task ``seq_sid2sid``); returns the step times and TRL's log."""
    from trl import GRPOConfig, GRPOTrainer

    from rl4rec.genrec.trl_interop import SIDReward, as_hf_dataset, completion_length, constrain_generation

    data = as_hf_dataset(loaded, "seq_sid2sid", "train").shuffle(seed=seed)
    model = loaded.model.train()
    if trie:
        constrain_generation(model, loaded.trie)
    timer = step_timer()
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=prompts * group_size, num_generations=group_size,
        max_completion_length=completion_length(loaded.trie), max_steps=steps, learning_rate=lr, beta=beta, temperature=temperature,
        lr_scheduler_type="constant", warmup_steps=0, loss_type=loss_type, use_cpu=not torch.cuda.is_available(), report_to="none", logging_steps=1,
        save_strategy="no", disable_tqdm=not progress, seed=seed, bf16=False, dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=SIDReward(reward, loaded.trie), args=args, train_dataset=data,
                          processing_class=loaded.tokenizer, callbacks=[timer])
    quiet_logs(trainer)
    trainer.train()
    trainer.save_model(str(out / "model"))
    return {"step_s": timer.times, "log": trainer.state.log_history}


def common_args(ap: argparse.ArgumentParser, *, name: str, steps: int, group_size: int, valid_rows: int) -> None:
    """The options both examples share."""
    ap.add_argument("--init", help="an rl4rec SFT run folder (default: train the synthetic smoke SFT model)")
    ap.add_argument("--runs-dir", default="runs/trl-example")
    ap.add_argument("--out", default=f"runs/trl-example/{name}")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=group_size)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--valid-rows", type=int, default=valid_rows)
    ap.add_argument("--seed", type=int, default=0)


def start_run(args, smoke):
    """``--init``'s SFT run, or the ``smoke`` recipe's SFT model trained first; loaded."""
    from rl4rec.genrec.artifacts import load_sft_run
    from rl4rec.genrec.smoke import smoke_sft

    return load_sft_run(args.init or smoke_sft(smoke, args.runs_dir)["run_dir"])


def report(loaded, args, out: Path, before: dict, after: dict, step_s: list[float], how: str, **extra) -> None:
    """``summary.json`` in ``out`` and the before -> after validation lines."""
    summary = {"init": str(loaded.run_dir), "args": vars(args), "valid_before": before, "valid_after": after,
               "median_step_s": statistics.median(step_s[2:] or step_s), **extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"validation ({how}) before -> after {args.steps} TRL steps:")
    for k in ("valid/hr@10", "valid/ndcg@10"):
        print(f"  {k}: {before[k]:.4f} -> {after[k]:.4f}")
    print(f"median step: {summary['median_step_s']:.3f} s; model and summary.json in {out}")


def main() -> None:
    from rl4rec.genrec.smoke import SID

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, name="trl-grpo-sid", steps=30, group_size=8, valid_rows=1000)
    ap.add_argument("--beta", type=float, default=1e-3)
    ap.add_argument("--loss-type", default="grpo", help="TRL's loss_type (TRL's own default is dapo; grpo is rl4rec's default)")
    ap.add_argument("--reward", default="rule", help="a registered rl4rec SID reward: rule | ndcg_rule | ranking | prefix | ...")
    ap.add_argument("--no-trie", action="store_true", help="sample unconstrained (TRL's default)")
    args = ap.parse_args()
    loaded = start_run(args, SID)
    out = Path(args.out)
    before = validate(loaded, loaded.model, args.valid_rows)
    res = train(loaded, out=out, steps=args.steps, prompts=args.prompts, group_size=args.group_size, lr=args.lr, beta=args.beta,
                reward=args.reward, trie=not args.no_trie, seed=args.seed, loss_type=args.loss_type)
    after = validate(loaded, loaded.model, args.valid_rows)
    report(loaded, args, out, before, after, res["step_s"], f"constrained beam search, {len(loaded.dataset.valid[: args.valid_rows])} rows")

if __name__ == "__main__":
    main()
