"""Free-text GRPO with Hugging Face TRL's ``GRPOTrainer`` and rl4rec's retrieval-grounded reward: the
model writes the next item's title, a retrieval index ranks the whole catalogue against that text,
and the target's rank gives the reward (``ndcg``, ``hit``, ``mrr`` or ``mixed``; ``pip install
'rl4rec[trl]'``).

    python examples/trl_grpo_text.py                      # synthetic catalogue, hashing encoder (no download)
    python examples/trl_grpo_text.py --init RUN --encoder /path/to/all-MiniLM-L6-v2 --steps 200 --prompts 32

``RUN`` is an rl4rec SFT run trained on ``seq_title2title``, e.g.
``rl4rec genrec sft --config configs/genrec/sft_text_industrial.yaml``. ``--ray`` serves the index
from a shared Ray actor (``retrieval.backend=ray`` of ``rl4rec genrec grpo-text``) instead of in
process. Validation is rl4rec's: greedy titles, grounded by the same index, HR/NDCG@K.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from trl_grpo_sid import common_args, quiet_logs, report, start_run, step_timer


def retrieval(loaded, encoder: str, *, ray: bool, cache_dir: Path):
    from rl4rec.genrec.retrieval import RetrievalConfig, make_retrieval
    from rl4rec.genrec.sid.text import embed_items, make_encoder

    emb = embed_items(loaded.dataset.catalog, make_encoder(encoder), cache_dir=cache_dir)
    cfg = RetrievalConfig(backend="ray" if ray else "local", encoder=encoder)
    return make_retrieval(cfg, emb, encoder_factory=functools.partial(make_encoder, encoder))


def validate(loaded, model, index, rows: int, max_new_tokens: int) -> dict[str, float]:
    from rl4rec.genrec.textgen import HFGenerator, text_metrics

    gen = HFGenerator(model.eval(), loaded.tokenizer, max_new_tokens=max_new_tokens)
    return text_metrics(gen, index, loaded.builder, loaded.tokenizer, loaded.dataset.valid[:rows], ks=(1, 5, 10), max_len=loaded.cfg.max_len)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, name="trl-grpo-text", steps=20, group_size=4, valid_rows=200)
    ap.add_argument("--encoder", default="hash", help="retrieval encoder: hash[:dim] or a local sentence-transformers path")
    ap.add_argument("--ray", action="store_true", help="the index as a shared Ray actor")
    ap.add_argument("--reward", default="ndcg", help="ndcg | hit | mrr | mixed")
    ap.add_argument("--cutoff", type=int, default=10, help="K of the reward: rank >= K scores 0")
    ap.add_argument("--max-new-tokens", type=int, default=12)
    args = ap.parse_args()
    from trl import GRPOConfig, GRPOTrainer

    from rl4rec.genrec.grpo.rewards import RewardContext
    from rl4rec.genrec.smoke import TEXT
    from rl4rec.genrec.trl_interop import TextReward, as_hf_dataset

    loaded, out = start_run(args, TEXT), Path(args.out)
    index = retrieval(loaded, args.encoder, ray=args.ray, cache_dir=Path(args.runs_dir) / ".cache")
    before = validate(loaded, loaded.model, index, args.valid_rows, args.max_new_tokens)
    reward = TextReward(args.reward, index, RewardContext(cutoff=args.cutoff))
    timer = step_timer()
    cfg = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.prompts * args.group_size, num_generations=args.group_size,
        max_completion_length=args.max_new_tokens, max_steps=args.steps, learning_rate=args.lr, beta=1e-3, loss_type="grpo",
        lr_scheduler_type="constant", use_cpu=not torch.cuda.is_available(), report_to="none", logging_steps=1, save_strategy="no",
        seed=args.seed, bf16=False, dataloader_num_workers=0,
    )
    data = as_hf_dataset(loaded, "seq_title2title", "train", reserve=args.max_new_tokens).shuffle(seed=args.seed)
    trainer = GRPOTrainer(model=loaded.model.train(), reward_funcs=reward, args=cfg, train_dataset=data, processing_class=loaded.tokenizer, callbacks=[timer])
    quiet_logs(trainer)
    trainer.train()
    trainer.save_model(str(out / "model"))
    after = validate(loaded, loaded.model, index, args.valid_rows, args.max_new_tokens)
    name = f"rewards/{reward.__name__}/mean"
    report(loaded, args, out, before, after, timer.times, f"greedy titles grounded by {args.encoder}, {before['valid/rows']} rows",
           reward_mean_per_step=[x[name] for x in trainer.state.log_history if name in x])

if __name__ == "__main__":
    main()
