"""The GRPO trainer: shared-prefix log-probs, rollouts, "it learns", resume, 1 vs 2 processes, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from rl4rec.cli import main
from rl4rec.config import ConfigError, apply_overrides
from rl4rec.genrec.artifacts import load_sft_run
from rl4rec.genrec.decoding import constrained_beam_search, constrained_sample
from rl4rec.genrec.grpo.config import GRPOConfig
from rl4rec.genrec.grpo.logprobs import completion_logprobs, trie_allowed
from rl4rec.genrec.grpo.rollout import generate_rollouts, mixed_split, select_group
from rl4rec.genrec.grpo.trainer import train_grpo
from rl4rec.genrec.model import load_model_dir
from rl4rec.genrec.sft import SFTConfig, train_sft
from rl4rec.runs import load_checkpoint
from tests.genrec.multiproc import torchrun

BASE = ["progress=false", "threads=1", "tracking.backends=[]"]
#: a deliberately under-trained SFT model: 300 steps, test HR@1 ~0.28 where ~0.9 is reachable
SFT = ["prompt.preamble=false", "tokenizer.vocab_size=400", "tasks.seq_title2sid=0", "tasks.sid2title=0", "max_steps=300", "batch_size=16",
       "eval_every=300", "eval_rows=100", "eval_beams=10", "select_metric=hr@1", "test_beams=10", "ks=[1,5,10]"]
GRPO = ["tasks.seq_title2sid=0", "tasks.title2sid=0", "eval_rows=100", "eval_beams=10", "select_metric=hr@1", "test_beams=10", "ks=[1,5,10]",
        "warmup_ratio=0", "group_size=8", "prompts_per_step=32"]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, synthetic_dir) -> Path:
    runs = tmp_path_factory.mktemp("grpo_runs")
    res = train_sft(apply_overrides(SFTConfig, {}, [f"dataset={synthetic_dir}", f"runs_dir={runs}", "run_name=sft", *BASE, *SFT]))
    return Path(res["run_dir"])


def _grpo(sft_run: Path, tmp_path: Path, *extra: str) -> GRPOConfig:
    return apply_overrides(GRPOConfig, {}, [f"init_from={sft_run}", f"runs_dir={tmp_path}", *BASE, *GRPO, *extra])


def _tiny_lm(vocab: int = 40):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    return Qwen2ForCausalLM(cfg)


def naive_completion_logprobs(model, prompts, completions: torch.Tensor, *, group_size: int, temperature: float = 1.0, trie=None):
    """The reference: each completion concatenated with its own prompt copy, one forward pass
    per row (what TRL does)."""
    device = next(model.parameters()).device
    rows = []
    for r in range(completions.shape[0]):
        p = list(prompts[r // group_size])
        seq = torch.as_tensor(p + completions[r].tolist(), device=device)[None]
        logits = model(input_ids=seq).logits[0, len(p) - 1 : -1].float() / temperature
        if trie is not None:  # the constrained policy: renormalised over the allowed tokens
            allowed = trie_allowed(trie, completions[r : r + 1].to(device), logits.shape[-1])[0]
            logits = logits.masked_fill(~allowed, float("-inf"))
        rows.append(torch.log_softmax(logits, -1).gather(-1, completions[r].to(device)[:, None]).squeeze(-1))
    return torch.stack(rows)


def test_shared_prefix_logprobs_equal_one_forward_per_completion():
    model = _tiny_lm()
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]  # different lengths: left padding
    comp = torch.randint(1, 40, (9, 4), generator=torch.Generator().manual_seed(1))
    fast = completion_logprobs(model, prompts, comp, group_size=3, pad_id=0, temperature=0.7)
    slow = naive_completion_logprobs(model, prompts, comp, group_size=3, temperature=0.7)
    assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    g_fast = torch.autograd.grad(fast.sum(), list(model.parameters()))
    g_slow = torch.autograd.grad(slow.sum(), list(model.parameters()))
    for a, b in zip(g_fast, g_slow, strict=True):  # gradients reach the shared prompt's keys/values
        assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_trie_logprobs_are_a_distribution_over_the_catalog(sft_run):
    """With the trie, log-probs are those of the constrained policy that generated the rollouts:
    summed over every catalog SID they give probability 1, forced tokens cost nothing, and the
    shared-prefix computation equals one forward pass per completion."""
    loaded = load_sft_run(sft_run)
    trie, model = loaded.trie, loaded.model
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids

    prompt = prompt_ids(loaded.builder, loaded.tokenizer, PromptBuilder.seq_samples("seq_sid2sid", loaded.dataset.valid[:1])[0], max_len=256)[0]
    comps = trie.completions
    mask = torch.arange(comps.shape[1]) < (trie.sid_lengths + len(trie.suffix_ids))[:, None]
    with torch.no_grad():
        lp = completion_logprobs(model, [prompt], comps, group_size=trie.num_sids, pad_id=trie.pad_id, trie=trie)
        full = completion_logprobs(model, [prompt], comps, group_size=trie.num_sids, pad_id=trie.pad_id)
        slow = naive_completion_logprobs(model, [prompt], comps[:5], group_size=5, trie=trie)
    seq = (lp * mask).sum(1)
    assert seq.exp().sum().item() == pytest.approx(1.0, abs=1e-4)
    assert (full * mask).sum(1).exp().sum().item() < 1.0  # the unconstrained policy leaks mass outside the catalog
    forced = mask & (torch.arange(comps.shape[1]) >= trie.sid_lengths[:, None])
    assert_close(lp[forced], torch.zeros(int(forced.sum())), atol=1e-6, rtol=0)
    assert_close(lp[:5] * mask[:5], slow * mask[:5], atol=1e-5, rtol=1e-5)


def _brute_force_select(sids, scores, target, g, target_first):
    m = len(sids)
    freq = {s: sids.count(s) for s in sids}
    seen, keyed = set(), []
    for j in range(m):
        s = sids[j]
        tier = 0 if (target_first and s == target) else (1 if s not in seen else 2)
        seen.add(s)
        keyed.append(((tier, -freq[s], -scores[j]), j))
    return [j for _, j in sorted(keyed)[:g]]


@pytest.mark.parametrize("target_first", [False, True])
def test_group_selection_matches_brute_force(target_first):
    gen = torch.Generator().manual_seed(3)
    sids = torch.randint(0, 5, (40, 12), generator=gen)
    scores = torch.randn(40, 12, generator=gen)  # distinct: no ties to break
    target = torch.randint(0, 5, (40,), generator=gen)
    got = select_group(sids, scores, target, 8, target_first=target_first)
    for b in range(40):
        want = _brute_force_select(sids[b].tolist(), scores[b].tolist(), int(target[b]), 8, target_first)
        assert got[b].tolist() == want


def test_rollouts_beam_sample_dynamic_and_add_gt(sft_run):
    loaded = load_sft_run(sft_run)
    trie, ds = loaded.trie, loaded.dataset
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids

    rows = ds.valid[:6]
    prompts = [prompt_ids(loaded.builder, loaded.tokenizer, s, max_len=256)[0] for s in PromptBuilder.seq_samples("seq_sid2sid", rows)]
    targets = torch.tensor([e.target_item_id for e in rows])
    pids = torch.arange(100, 106)
    beam = generate_rollouts(loaded.model, prompts, targets, pids, trie, group_size=8, mode="beam")
    assert beam.prompt_ids.tolist() == [p for p in range(100, 106) for _ in range(8)]
    assert beam.ranks.view(6, 8).tolist() == [list(range(8))] * 6
    assert all(len(set(r)) == 8 for r in beam.sid_index.view(6, 8).tolist())  # G distinct items
    # tokens are exactly the trie's completions of the SIDs, EOS included in the mask
    assert_close(beam.tokens[beam.mask], trie.completions[beam.sid_index][beam.mask])
    last = beam.tokens.gather(1, (beam.mask.sum(1) - 1)[:, None]).squeeze(1)
    assert (last == trie.eos_id).all()
    # a hit carries the target's id (collisions resolved like evaluation)
    hit = beam.sid_index == trie.item_sid[beam.target_ids]
    assert (beam.item_ids[hit] == beam.target_ids[hit]).all()

    gt = generate_rollouts(loaded.model, prompts, targets, pids, trie, group_size=8, mode="beam", add_gt=True)
    assert (gt.sid_index.view(6, 8)[:, -1] == trie.item_sid[targets]).all() and (gt.item_ids.view(6, 8)[:, -1] == targets).all()
    last = gt.tokens.gather(1, (gt.mask.sum(1) - 1)[:, None]).squeeze(1)
    assert (last == trie.eos_id).all()  # the injected target ends with EOS (upstream drops it)

    gen = torch.Generator().manual_seed(0)
    smp = generate_rollouts(loaded.model, prompts, targets, pids, trie, group_size=8, mode="sample", generator=gen)
    assert sorted(smp.ranks.view(6, 8)[0].tolist()) == list(range(8))  # ranks: a permutation by log-prob
    dyn = generate_rollouts(loaded.model, prompts, targets, pids, trie, group_size=8, mode="sample", dynamic_sampling=True, oversample=3.0, generator=gen)
    for row_sid, row_t in zip(dyn.sid_index.view(6, 8).tolist(), trie.item_sid[targets].tolist(), strict=True):
        k = row_sid.count(row_t)  # every target copy first, then distinct others
        assert row_sid[:k] == [row_t] * k
        rest = row_sid[k:]
        n_distinct = len(set(rest))
        assert len(set(rest[:n_distinct])) == n_distinct


def test_mixed_split_rounds_and_keeps_one_of_each():
    assert [mixed_split(16, 0.5), mixed_split(8, 0.25), mixed_split(32, 0.6), mixed_split(2, 0.9), mixed_split(3, 0.01)] == [8, 2, 19, 1, 1]
    with pytest.raises(ValueError, match="group_size >= 2"):
        mixed_split(1, 0.5)


def test_mixed_rollouts_are_beams_then_samples(sft_run):
    """rollout=mixed: the first round(share*G) completions of a group are the beam search's best
    distinct items in beam order, the rest the constrained samples of the same generator; ranks
    order the whole group by log-prob."""
    loaded = load_sft_run(sft_run)
    trie, ds = loaded.trie, loaded.dataset
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids

    rows = ds.valid[:5]
    prompts = [prompt_ids(loaded.builder, loaded.tokenizer, s, max_len=256)[0] for s in PromptBuilder.seq_samples("seq_sid2sid", rows)]
    targets = torch.tensor([e.target_item_id for e in rows])
    mix = generate_rollouts(loaded.model, prompts, targets, torch.arange(5), trie, group_size=8, mode="mixed", beam_share=0.25,
                            generator=torch.Generator().manual_seed(4))
    beam = constrained_beam_search(loaded.model, prompts, trie, num_beams=2)
    smp = constrained_sample(loaded.model, prompts, trie, num_samples=6, generator=torch.Generator().manual_seed(4))
    sids = mix.sid_index.view(5, 8)
    assert sids[:, :2].tolist() == beam.sid_index.tolist()
    assert sids[:, 2:].tolist() == smp.sid_index.tolist()
    assert_close(mix.tokens.view(5, 8, -1)[:, :2], beam.token_ids)
    scores = torch.cat([beam.scores, smp.scores], 1)
    for r in range(5):  # brute force: rank = number of completions with a higher score (ties by position)
        want = [sum(scores[r, j] > scores[r, i] or (scores[r, j] == scores[r, i] and j < i) for j in range(8)) for i in range(8)]
        assert mix.ranks.view(5, 8)[r].tolist() == want
    with pytest.raises(ConfigError, match="dynamic_sampling"):
        _grpo(sft_run, Path("unused"), "rollout=mixed", "dynamic_sampling=true")


def _hr1(res):
    return res["test"]["hr@1"]


@pytest.mark.parametrize(
    "extra",
    [
        ["rollout=beam", "max_steps=40", "lr=1e-3", "eval_every=20"],
        ["rollout=sample", "max_steps=60", "lr=5e-4", "eval_every=30"],
        ["rollout=mixed", "max_steps=60", "lr=1e-3", "eval_every=20"],
    ],
    ids=["beam", "sample", "mixed"],
)
def test_grpo_raises_hr1_of_an_undertrained_sft_model(sft_run, tmp_path, extra):
    """rule + ndcg_rule rewards; the SFT model's test HR@1 is ~0.28. ~15 s each on one core."""
    res = train_grpo(_grpo(sft_run, tmp_path, *extra))
    sft = res["sft_test"]["hr@1"]
    assert _hr1(res) > sft + 0.06, (sft, res["test"])
    assert res["best_step"] > 0 and res["test"]["invalid_rate"] == 0
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/reward" in r]
    assert {"train/kl", "train/zero_adv_groups", "train/invalid_rate", "rewards/rule_mean", "rewards/ndcg_rule_mean",
            "perf/tokens_per_s", "train/categorical_diversity"} <= set(train[0])
    first, late = train[:10], train[-10:]
    assert sum(r["rewards/rule_mean"] for r in late) > sum(r["rewards/rule_mean"] for r in first)


def test_resume_after_a_stop_gives_the_same_model(sft_run, tmp_path):
    common = ["rollout=sample", "max_steps=6", "eval_every=3", "lr=1e-3", "test_at_end=false", "eval_rows=20", "group_size=4", "prompts_per_step=8", "micro_batch=3"]
    full = train_grpo(_grpo(sft_run, tmp_path, *common, "run_name=full"))
    assert train_grpo(_grpo(sft_run, tmp_path, *common, "run_name=cut", "stop_at_step=4")) is None
    cut = tmp_path / "genrec-grpo" / "cut"
    assert json.loads((cut / "status.json").read_text())["status"] == "stopped"
    again = train_grpo(_grpo(sft_run, tmp_path, *common, "run_name=cut", "resume=true"))
    assert again["best_valid"] == full["best_valid"]
    a, _, _ = load_model_dir(tmp_path / "genrec-grpo" / "full" / "model" / "last")
    b, _, _ = load_model_dir(cut / "model" / "last")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert_close(p, q)


_TWO_PROC = """
import sys
from rl4rec.config import apply_overrides
from rl4rec.genrec.grpo.config import GRPOConfig
from rl4rec.genrec.grpo.trainer import train_grpo
train_grpo(apply_overrides(GRPOConfig, {}, sys.argv[1:]))
"""


def test_two_processes_give_the_same_update_as_one(sft_run, tmp_path):
    """Groups and loss normalisation do not depend on the process count: 3 steps of 8 prompts on
    1 process and on 2 (torchrun, gloo) give the same first gradient and end at nearly the same weights."""
    script = tmp_path / "grpo_worker.py"
    script.write_text(_TWO_PROC)
    common = [f"init_from={sft_run}", f"runs_dir={tmp_path}", *BASE, *GRPO, "group_size=4", "prompts_per_step=8", "max_steps=3", "lr=1e-3",
              "eval_at_start=false", "eval_rows=20", "test_at_end=false", "micro_batch=3", "rollout_batch=3", "experiment=mp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), *common, "run_name=one"], check=True, env=env, capture_output=True)
    proc = subprocess.run([*torchrun(), str(script), *common, "run_name=two"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "mp" / "two" / "test_results.json").read_text())["processes"] == 2
    one, _, _ = load_model_dir(tmp_path / "mp" / "one" / "model" / "last")
    two, _, _ = load_model_dir(tmp_path / "mp" / "two" / "model" / "last")
    start, _, _ = load_model_dir(sft_run / "model" / "best")
    moved = max((p - s).abs().max().item() for p, s in zip(one.parameters(), start.parameters(), strict=True))
    diff = max((p - q).abs().max().item() for p, q in zip(one.parameters(), two.parameters(), strict=True))
    # Adam turns float-summation noise in near-zero gradient coordinates into lr-sized steps, so
    # weights after 3 steps agree only roughly; the first step's gradient (same weights on both
    # sides) must agree to float precision: its norm over all parameters, after the all-reduce
    assert moved > 1e-4 and diff < moved / 10, (moved, diff)
    first = [next(json.loads(x) for x in (tmp_path / "mp" / n / "metrics.jsonl").read_text().splitlines() if json.loads(x).get("step") == 1) for n in ("one", "two")]
    assert first[0]["train/grad_norm"] > 0
    assert first[1]["train/grad_norm"] == pytest.approx(first[0]["train/grad_norm"], rel=1e-5)
    for key in ("train/reward", "rewards/rule_mean", "train/zero_adv_groups", "train/group_hit_rate"):
        assert first[1][key] == pytest.approx(first[0][key], rel=1e-6, abs=1e-9), key


def test_semantic_and_cf_rewards_in_a_run(sft_run, synthetic_dir, tmp_path):
    from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline

    base = train_baseline(apply_overrides(BaselineConfig, {}, ["model=sasrec", f"dataset={synthetic_dir}", f"runs_dir={tmp_path}", "epochs=2", *BASE]))
    res = train_grpo(_grpo(sft_run, tmp_path, "rewards={rule: 1.0, semantic: 0.5, cf: 0.1}", f"cf_model={base['run_dir']}",
                           "max_steps=2", "group_size=4", "prompts_per_step=8", "test_at_end=false", "eval_rows=20"))
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/reward" in r]
    assert len(train) == 2 and all(abs(r["rewards/semantic_mean"]) > 0 and r["rewards/cf_mean"] != 0 for r in train)


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="cf needs cf_model"):
        apply_overrides(GRPOConfig, {}, ["rewards={cf: 1.0}", "tasks.title2sid=0"])
    with pytest.raises(ConfigError, match="item tasks"):
        apply_overrides(GRPOConfig, {}, ["rewards={cf: 1.0}", "cf_model=x"])
    with pytest.raises(ConfigError, match="free text"):
        apply_overrides(GRPOConfig, {}, ["rewards={ndcg: 1.0}"])
    with pytest.raises(ConfigError, match="unknown reward"):
        apply_overrides(GRPOConfig, {}, ["rewards={rul: 1.0}"])
    with pytest.raises(ConfigError, match="dynamic_sampling"):
        apply_overrides(GRPOConfig, {}, ["dynamic_sampling=true"])
    with pytest.raises(ValueError, match="init_from"):
        train_grpo(GRPOConfig())


def test_smoke_command_and_eval_of_a_grpo_run(tmp_path, capsys):
    assert main(["genrec", "grpo", "--smoke", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "GRPO (ours)" in out and "SFT (start)" in out
    run_dir = tmp_path / "grpo-smoke" / "grpo"
    res = json.loads((run_dir / "test_results.json").read_text())
    assert res["steps"] == 6 and res["test"]["invalid_rate"] == 0
    assert main(["genrec", "eval", str(run_dir), "beams=5", f"runs_dir={tmp_path}", "progress=false", "threads=1"]) == 0
    assert "invalid 0.0000" in capsys.readouterr().out


def test_config_file_as_positional_argument(tmp_path):
    """`rl4rec genrec grpo configs/genrec/X.yaml init_from=RUN` (the issue's form) and --config agree."""
    import argparse

    from rl4rec.config import config_from_args

    path = tmp_path / "g.yaml"
    path.write_text("group_size: 8\nrewards: {rule: 1.0}\n")
    a = config_from_args(GRPOConfig, argparse.Namespace(config=None, overrides=[str(path), "seed=3"]))
    b = config_from_args(GRPOConfig, argparse.Namespace(config=str(path), overrides=["seed=3"]))
    assert a == b and a.group_size == 8 and a.rewards == {"rule": 1.0} and a.seed == 3
    with pytest.raises(ConfigError, match="one config file"):
        config_from_args(GRPOConfig, argparse.Namespace(config=str(path), overrides=[str(path)]))


@pytest.mark.parametrize(
    "option",
    [["loss_type=dapo"], ["loss_type=gspo"], ["num_iterations=2", "clip_eps=0.1"], ["scale_rewards=none"], ["beta=0"],
     ["rollout=sample_dedup"], ["rollout=sample", "dynamic_sampling=true"], ["add_gt=true"], ["logprob_space=vocab"],
     ["rewards={rule: 1.0, ranking: 0.5}"], ["ref_sync_every=1", "ref_alpha=0.5"]],
    ids=lambda o: "+".join(o),
)
def test_every_grpo_option_runs_two_steps_and_moves_the_policy(sft_run, tmp_path, option):
    """Each loss / update / rollout option end to end: two optimizer steps, finite metrics, the policy's
    weights moved from the SFT start; with a reference sync every step the reference moved too."""
    import math

    res = train_grpo(_grpo(sft_run, tmp_path, "max_steps=2", "eval_every=2", "test_at_end=false", "lr=1e-3", "save_every=1", *option))
    assert res["steps"] == 2
    rows = [json.loads(x) for x in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/loss" in r]
    assert len(train) == 2 and all(math.isfinite(v) for r in train for v in r.values() if isinstance(v, float))
    state = load_checkpoint(Path(res["run_dir"]) / "checkpoints" / "last.pt")["task"]
    start = load_checkpoint(sft_run / "checkpoints" / "best.pt")["task"]["model"]  # the SFT model GRPO starts from
    policy = state["policy"]
    assert start.keys() & policy.keys()
    assert any(not torch.equal(policy[k], start[k]) for k in policy if k in start), "the policy did not move"
    if "ref_sync_every=1" in option:
        assert "ref" in state and any(not torch.equal(state["ref"][k], start[k]) for k in state["ref"] if k in start), "the reference never synced"
