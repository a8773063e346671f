"""Free-text GRPO grounded by retrieval (spec genrec.md §10): generation, grounded rewards, it learns, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rl4rec.cli import main
from rl4rec.config import ConfigError, apply_overrides
from rl4rec.genrec.artifacts import load_sft_run
from rl4rec.genrec.grpo.config import TextGRPOConfig
from rl4rec.genrec.grpo.trainer import train_grpo
from rl4rec.genrec.sft import SFTConfig, train_sft
from rl4rec.genrec.smoke import TEXT


@pytest.fixture(scope="module")
def text_sft(tmp_path_factory, synthetic_dir) -> Path:
    """A tiny LM taught to write the next item's title for 400 steps (~40 s on one core)."""
    runs = tmp_path_factory.mktemp("text_runs")
    res = train_sft(apply_overrides(SFTConfig, {}, [f"dataset={synthetic_dir}", *TEXT.sft, "experiment=grpo-text-smoke", "run_name=sft", f"runs_dir={runs}", "progress=false",
                                                    "max_steps=400", "eval_every=400"]))
    assert res["test"]["rows"] == len(load_sft_run(res["run_dir"]).dataset.test)
    return Path(res["run_dir"])


def _cfg(text_sft: Path, tmp_path: Path, *extra: str) -> TextGRPOConfig:
    return apply_overrides(TextGRPOConfig, {}, [*TEXT.rl, "experiment=grpo-text-smoke", "run_name=grpo", f"init_from={text_sft}", f"runs_dir={tmp_path}", "progress=false", *extra])


def test_hf_generation_is_seeded_and_masks_up_to_eos(text_sft):
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids
    from rl4rec.genrec.textgen import HFGenerator

    run = load_sft_run(text_sft)
    prompts = [prompt_ids(run.builder, run.tokenizer, s, max_len=256)[0] for s in PromptBuilder.seq_samples("seq_title2title", run.dataset.valid[:3])]
    gen = HFGenerator(run.model, run.tokenizer, max_new_tokens=12)
    a = gen.generate(prompts, num_return=4, do_sample=True, seed=3)
    b = gen.generate(prompts, num_return=4, do_sample=True, seed=3)
    assert torch.equal(a.tokens, b.tokens) and a.texts == b.texts and a.tokens.shape[0] == 12
    eos = run.tokenizer.eos_token_id
    for row, m in zip(a.tokens, a.mask, strict=True):
        n = int(m.sum())
        assert m[:n].all() and not m[n:].any()  # a prefix
        if (row[:n] == eos).any():
            assert int((row[:n] == eos).nonzero()[0]) == n - 1  # ends at the first EOS
        assert (row[n:] == run.tokenizer.pad_token_id).all()
    assert gen.generate(prompts, num_return=1, do_sample=False).texts == gen.generate(prompts, num_return=1, do_sample=False).texts


def test_grounded_rewards_equal_brute_force_cosine_ranks(text_sft, tmp_path):
    """The rollout's target ranks (and the ndcg/hit rewards built from them) are the ranks of a
    brute-force cosine search of each generated text against every item."""
    from rl4rec.genrec.grpo.families import TextFamily
    from rl4rec.genrec.grpo.rewards import RewardContext, combine_rewards
    from rl4rec.genrec.grpo.update import PromptBatch
    from rl4rec.genrec.sid.text import make_encoder

    cfg = _cfg(text_sft, tmp_path)
    run = load_sft_run(text_sft)
    fam = TextFamily(cfg, run, torch.device("cpu"), run.model)
    samples, prompts, _ = fam.prompt_pool()
    pick = list(range(6))
    batch = PromptBatch([prompts[i] for i in pick], torch.tensor([samples[i].target_item_id for i in pick]), torch.arange(6), [samples[i].history for i in pick])
    rolls, rr = fam.rollouts(run.model, batch, torch.Generator().manual_seed(0))
    texts = run.tokenizer.batch_decode(rolls.tokens, skip_special_tokens=True)
    enc = make_encoder("hash")
    q = torch.nn.functional.normalize(torch.as_tensor(enc.encode([t.strip() for t in texts])), dim=-1)
    items = torch.nn.functional.normalize(torch.as_tensor(enc.encode(run.dataset.catalog.texts())), dim=-1)
    sims = (q @ items.T).numpy()
    for r in range(len(texts)):
        t = int(rr.target_ids[r])
        brute = int(((sims[r] > sims[r, t]) | ((sims[r] == sims[r, t]) & (np.arange(sims.shape[1]) < t))).sum())
        assert int(rr.target_ranks[r]) == brute
    ndcg, _ = combine_rewards(rr, {"ndcg": 1.0}, RewardContext(cutoff=10))
    want = torch.where(rr.target_ranks < 10, 1.0 / torch.log2(rr.target_ranks.float() + 2), torch.zeros(len(texts)))
    torch.testing.assert_close(ndcg, torch.where(rr.item_ids >= 0, want, torch.zeros_like(want)))


def test_free_text_grpo_raises_the_mean_reward(text_sft, tmp_path):
    """40 steps of 16 prompts x 8 texts, ndcg@10 reward from a hashing retriever: the mean reward of
    the last quarter of the steps beats the first quarter's (0.165 -> 0.208 when written)."""
    res = train_grpo(_cfg(text_sft, tmp_path, "max_steps=40", "lr=5e-4", "group_size=8", "prompts_per_step=16", "micro_batch=16",
                          "rollout_batch=16", "eval_every=100", "test_at_end=false", "eval_at_start=false"))
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["train/reward"] for r in rows if "train/reward" in r]
    assert len(rewards) == 40 and {"rewards/ndcg_mean", "train/kl", "train/invalid_rate"} <= set(rows[0])
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.02, rewards


def test_text_config_and_backend_errors(tmp_path):
    with pytest.raises(ConfigError, match="score SID completions"):
        apply_overrides(TextGRPOConfig, {}, ["rewards={rule: 1.0}"])
    with pytest.raises(ConfigError, match="mixed_weights"):
        apply_overrides(TextGRPOConfig, {}, ["mixed_weights={semantic: 1.0}"])
    cfg = apply_overrides(TextGRPOConfig, {}, ["rewards={mixed: 1.0}", "mixed_weights={ndcg: 0.5, mrr: 0.5}"])
    assert cfg.rewards == {"mixed": 1.0}
    from rl4rec.genrec.textgen import make_generator

    try:
        import vllm  # noqa: F401
        has_vllm = True
    except ModuleNotFoundError:
        has_vllm = False
    if not (has_vllm and torch.cuda.is_available()):
        with pytest.raises(RuntimeError, match="vllm"):
            make_generator("vllm", None, None)
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_generator("tgi", None, None)


def test_grpo_text_smoke_command(tmp_path, capsys):
    assert main(["genrec", "grpo-text", "--smoke", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "GRPO free text (ours)" in out and "SFT free text (start)" in out
    res = json.loads((tmp_path / "grpo-text-smoke" / "grpo" / "test_results.json").read_text())
    assert res["steps"] == 4 and {"hr@10", "ndcg@10"} <= set(res["test"]) and res["sft_test"]["rows"] == res["test"]["rows"]


def test_vllm_sync_releases_the_old_engine_before_building_the_new(monkeypatch, tmp_path):
    """A fake ``vllm.LLM`` counts live engines (weakly): when a new one is built the old one is
    gone, so two engines never hold GPU memory at once."""
    import sys
    import types
    import weakref

    from rl4rec.genrec.textgen import VLLMGenerator

    live, seen_at_build = weakref.WeakSet(), []

    class FakeLLM:
        def __init__(self, **kwargs):
            seen_at_build.append(len(live))
            live.add(self)

    class Saved:
        def save_pretrained(self, path):
            pass

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM))
    gen = object.__new__(VLLMGenerator)  # no GPU here: the engine handling only
    gen.tok, gen.mem, gen.sync_every, gen._dir, gen._calls, gen.llm = Saved(), 0.5, 1, str(tmp_path), 0, None
    for _ in range(3):
        gen.sync(Saved())
    assert seen_at_build == [0, 0, 0] and len(live) == 1
