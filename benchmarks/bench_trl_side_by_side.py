"""Claim: what TRL's GRPOTrainer (with rl4rec's reward and trie) gives against ``rl4rec genrec grpo`` on
the same SFT model, measured side by side: seconds per step and validation NDCG@10 / HR@10 after the
same number of steps, over 3 seeds.

Setup (one thread, synthetic 50-item catalogue): the SFT model is the SID smoke recipe trained for
300 steps (under-trained on purpose, so RL has room). Every arm then runs 40 steps of 8 prompts x 8
completions, reward ``rule`` (1 for the target item), lr 1e-4 constant, beta 1e-3, temperature 1,
the per-sequence ``grpo`` loss, gradient norm clipped at 1 (TRL's default), from that same model:

- ``trl_trie``: TRL ``GRPOTrainer`` sampling through :func:`rl4rec.genrec.trl_interop.constrain_generation`;
- ``trl_free``: TRL sampling unconstrained (its default), invalid completions score 0;
- ``rl4rec_sample_vocab``: rl4rec, trie-constrained sampling, log-probs over the whole vocabulary (as TRL);
- ``rl4rec_sample``: rl4rec, trie-constrained sampling, log-probs of the constrained policy (``logprob_space=trie``);
- ``rl4rec_beam``: rl4rec, beam-search groups (the G best distinct items), trie log-probs.

Validation is the same function for every arm: rl4rec's constrained 10-beam search on all 281
validation rows. Seconds per step: median of steps 3..40 (TRL: its optimizer step with generation
and rewards; rl4rec: ``perf/step_s``). The test file is not used.

    python benchmarks/bench_trl_side_by_side.py [--steps 40 --seeds 0 1 2]   # needs the trl extra; ~10 min
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "trl_side_by_side.json"
sys.path.insert(0, str(ROOT / "examples"))
PROMPTS, G, LR, BETA = 8, 8, 1e-4, 1e-3
RL4REC_ARMS = {
    "rl4rec_sample_vocab": ["rollout=sample", "logprob_space=vocab"],
    "rl4rec_sample": ["rollout=sample", "logprob_space=trie"],
    "rl4rec_beam": ["rollout=beam", "logprob_space=trie"],
}


def rl4rec_arm(runs: Path, init: Path, name: str, extra: list[str], steps: int, seed: int):
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.grpo.config import GRPOConfig
    from rl4rec.genrec.grpo.trainer import train_grpo
    from rl4rec.genrec.model import load_model_dir

    cfg = apply_overrides(GRPOConfig, {}, [
        f"init_from={init}", f"runs_dir={runs}", "experiment=side", f"run_name={name}-{seed}", f"seed={seed}", "threads=1", "progress=false",
        "tracking.backends=[]", "tasks.title2sid=0", "tasks.seq_title2sid=0", f"group_size={G}", f"prompts_per_step={PROMPTS}",
        f"rollout_batch={PROMPTS}", f"micro_batch={PROMPTS}", f"max_steps={steps}", "rewards={rule: 1.0}", f"beta={BETA}", f"lr={LR}",
        "schedule=constant", "warmup_ratio=0", "loss_type=grpo", "grad_clip=1.0", "eval_at_start=false", f"eval_every={steps}", "eval_rows=10", "eval_beams=5",
        "select_metric=hr@1", "ks=[1]", "test_at_end=false", *extra,
    ])
    res = train_grpo(cfg)
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    times = [r["perf/step_s"] for r in rows if "perf/step_s" in r]
    model, _, _ = load_model_dir(Path(res["run_dir"]) / "model" / "last")
    return model, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    import transformers
    import trl
    from trl_grpo_sid import train, validate

    from rl4rec.genrec.artifacts import load_sft_run
    from rl4rec.genrec.smoke import SID, Smoke, smoke_sft
    from rl4rec.metrics.stats import mean_ci

    sft_recipe = Smoke("trl-side", SID.sft_task, (*SID.sft, "max_steps=300", "eval_every=300"), SID.rl_task, SID.rl)
    arms: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        init = Path(smoke_sft(sft_recipe, runs)["run_dir"])
        start = validate(load_sft_run(init), load_sft_run(init).model, rows=10**6)
        for seed in args.seeds:
            for name, trie in (("trl_trie", True), ("trl_free", False)):
                loaded = load_sft_run(init)
                torch.manual_seed(seed)
                res = train(loaded, out=runs / f"{name}-{seed}", steps=args.steps, prompts=PROMPTS, group_size=G, lr=LR, beta=BETA,
                            reward="rule", trie=trie, seed=seed, progress=False)
                invalid = [x["rl4rec_rule/invalid_rate"] for x in res["log"] if "rl4rec_rule/invalid_rate" in x]
                arm = arms.setdefault(name, {"runs": []})
                arm["runs"].append({"seed": seed, "step_s": statistics.median(res["step_s"][2:]), "invalid_rate": statistics.mean(invalid),
                                    **validate(loaded, loaded.model, rows=10**6)})
                print(name, seed, arm["runs"][-1], flush=True)
            for name, extra in RL4REC_ARMS.items():
                loaded = load_sft_run(init)
                model, times = rl4rec_arm(runs, init, name, extra, args.steps, seed)
                arm = arms.setdefault(name, {"runs": []})
                arm["runs"].append({"seed": seed, "step_s": statistics.median(times[2:]), "invalid_rate": 0.0, **validate(loaded, model, rows=10**6)})
                print(name, seed, arm["runs"][-1], flush=True)
    rows = [{"arm": "SFT start", "seeds": 0, **{k: start[k] for k in ("valid/ndcg@10", "valid/hr@10", "valid/hr@1")}}]
    for name, arm in arms.items():
        row = {"arm": name, "seeds": len(arm["runs"])}
        for key in ("step_s", "valid/ndcg@10", "valid/hr@10", "valid/hr@1", "invalid_rate"):
            ci = mean_ci([r[key] for r in arm["runs"]])
            row[key] = {"mean": ci.mean, "ci95": ci.half_width}
        rows.append(row)
    base = rows[1]["step_s"]["mean"]
    for row in rows[1:]:
        row["step_s_vs_trl_trie"] = row["step_s"]["mean"] / base
    result = {
        "claim": __doc__.split("\n\n")[0],
        "command": "python benchmarks/bench_trl_side_by_side.py",
        "setup": {"prompts_per_step": PROMPTS, "group_size": G, "steps": args.steps, "lr": LR, "beta": BETA, "reward": "rule",
                  "loss_type": "grpo", "seeds": args.seeds, "threads": 1, "sft": "SID smoke recipe, 300 steps, synthetic 50-item catalogue",
                  "validation": "constrained 10-beam search, all 281 validation rows"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "trl": trl.__version__},
        "rows": rows,
        "raw": {name: arm["runs"] for name, arm in arms.items()},
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print("| arm | s/step | vs TRL+trie | valid NDCG@10 | valid HR@10 | invalid |\n|---|---|---|---|---|---|")
    def cell(r: dict, key: str) -> str:
        return f"{r[key]['mean']:.4f} ± {r[key]['ci95']:.4f}" if isinstance(r.get(key), dict) else f"{r.get(key, float('nan')):.4f}"

    for r in rows:
        print(f"| {r['arm']} | {cell(r, 'step_s')} | {r.get('step_s_vs_trl_trie', 1.0):.2f}x | {cell(r, 'valid/ndcg@10')} | {cell(r, 'valid/hr@10')} | {cell(r, 'invalid_rate')} |")


if __name__ == "__main__":
    main()
