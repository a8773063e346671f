"""rl4rec inside TRL: rewards in TRL's calling convention (hand-computed against rl4rec's own
rewards), the trie as a generation constraint, the regex for TRL's vLLM path, the dataset adapter,
and a few real ``trl.GRPOTrainer`` steps. The TRL tests skip when the ``trl`` extra is missing."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rl4rec.config import apply_overrides
from rl4rec.genrec.artifacts import load_sft_run
from rl4rec.genrec.grpo.rewards import RewardContext
from rl4rec.genrec.trl_interop import (
    SIDReward,
    TextReward,
    as_hf_dataset,
    catalog_regex,
    completion_length,
    constrain_generation,
)

NO_TRL = "the trl extra is not installed (pip install 'rl4rec[trl]'): TRL interop tests skipped"


@pytest.fixture(scope="module")
def sft(tmp_path_factory, synthetic_dir):
    """The SID smoke's brief SFT run (60 steps) on the synthetic catalogue, loaded."""
    from rl4rec.genrec.smoke import SID
    from rl4rec.registry import get_pipeline

    runs = tmp_path_factory.mktemp("trl_runs")
    p = get_pipeline("genrec.sft")
    res = p.run(apply_overrides(p.config_class(), {}, [f"dataset={synthetic_dir}", f"runs_dir={runs}", "run_name=sft", "progress=false", *SID.sft]))
    return load_sft_run(res["run_dir"])


def _completion(ld, item: int) -> list[int]:
    """The token ids of a complete answer for ``item``: its SID, ``"\\n"``, EOS."""
    t = ld.trie
    g = int(t.item_sid[item])
    return t.completions[g, : int(t.sid_lengths[g]) + len(t.suffix_ids)].tolist()


def test_sid_reward_parses_completions_and_scores_as_rl4rec(sft):
    """Two groups of 3 (rows 7 and 9). Group 7: the target, another item, a truncated SID.
    Group 9: two misses and junk. rule: 1 / 0 / invalid; ndcg_rule: 0 for the hit, -w_rank for the
    miss in the group with a hit, 0 in the group without one, invalid_reward for invalid rows."""
    ld = sft
    target_a, other, target_b = 5, 17, 30
    comps = [_completion(ld, target_a), _completion(ld, other), _completion(ld, other)[:-1],
             _completion(ld, other), _completion(ld, target_a), [ld.trie.eos_id]]
    kw = {"target": [target_a] * 3 + [target_b] * 3, "row": [7, 7, 7, 9, 9, 9]}
    prompts = ["p7"] * 3 + ["p9"] * 3
    ctx = RewardContext(invalid_reward=-1.0)
    assert SIDReward("rule", ld.trie, ctx)(prompts, [""] * 6, completion_ids=comps, **kw) == [1.0, 0.0, -1.0, 0.0, 0.0, -1.0]
    w = [(1 / math.log2(i + 2)) / sum(1 / math.log2(j + 2) for j in range(3)) for i in range(3)]
    got = SIDReward("ndcg_rule", ld.trie, ctx)(prompts, [""] * 6, completion_ids=comps, **kw)
    assert got == pytest.approx([0.0, -w[1], -1.0, 0.0, 0.0, -1.0])
    logged = {}
    mixed = SIDReward({"rule": 1.0, "ndcg_rule": 0.5}, ld.trie, ctx)
    got = mixed(prompts, [""] * 6, completion_ids=comps, log_metric=logged.__setitem__, **kw)
    assert got == pytest.approx([1.0, -0.5 * w[1], -1.0, 0.0, 0.0, -1.0])
    assert logged["rl4rec_rule+ndcg_rule/invalid_rate"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="column 'target'"):
        mixed(prompts, [""] * 6, completion_ids=comps)
    with pytest.raises(ValueError, match="unknown reward"):
        SIDReward("nope", ld.trie)


def test_groups_without_a_row_column_follow_the_prompts(sft):
    """Without ``row``, completions group by prompt text, ranked in arrival order even when TRL's
    batch interleaves them: group a = (miss, hit), group b = (hit, miss); each miss gets -w_rank."""
    ld = sft
    comps = [_completion(ld, 17), _completion(ld, 3), _completion(ld, 3), _completion(ld, 17)]
    got = SIDReward("ndcg_rule", ld.trie)(["a", "b", "a", "b"], [""] * 4, completion_ids=comps, target=[3, 3, 3, 3])
    norm = 1 + 1 / math.log2(3)
    assert got == pytest.approx([-1 / norm, 0.0, 0.0, -(1 / math.log2(3)) / norm])


def test_text_reward_is_the_retrieval_rank_reward():
    """ndcg = 1/log2(r+2) for the target's rank r < K among all items (brute force with the same
    index), 0 beyond K, and an empty completion is invalid."""
    from rl4rec.genrec.retrieval import RetrievalIndex
    from rl4rec.genrec.sid.text import make_encoder

    enc = make_encoder("hash:64")
    titles = [f"item number {i} {'red' if i % 2 else 'blue'} widget" for i in range(40)]
    index = RetrievalIndex(torch.as_tensor(enc.encode(titles)), enc)
    texts, targets = [titles[3], "blue widget", titles[30], ""], [3, 8, 2, 5]
    ranks = index.rank_texts(texts[:3], targets[:3]).tolist()
    want = [1 / math.log2(r + 2) if r < 5 else 0.0 for r in ranks] + [-0.5]
    got = TextReward("ndcg", index, RewardContext(cutoff=5, invalid_reward=-0.5))([str(i) for i in range(4)], texts, target=targets)
    assert ranks[0] == 0 and got == pytest.approx(want)
    chat = [[{"role": "assistant", "content": t}] for t in texts]  # conversational completions
    assert TextReward("ndcg", index, RewardContext(cutoff=5, invalid_reward=-0.5))([str(i) for i in range(4)], chat, target=targets) == got


def test_catalog_regex_accepts_exactly_the_catalogue(sft):
    """Every catalogue SID (+ "\\n") matches; random strings over the same tokens match iff they are
    a catalogue SID (brute-force oracle)."""
    cat = sft.dataset.catalog
    pattern = re.compile(catalog_regex(cat))
    sids = {cat.sid(i) for i in range(len(cat))}
    assert all(pattern.fullmatch(s + "\n") for s in sids)
    assert not any(pattern.fullmatch(s) for s in sids)  # the suffix is required
    tokens = sorted({t for i in range(len(cat)) for t in cat.sids.tokens(i)})
    rng = random.Random(0)
    for _ in range(2000):
        s = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 4)))
        assert bool(pattern.fullmatch(s + "\n")) == (s in sids)


def test_dataset_rows_carry_rl4recs_prompt_and_target(sft):
    pytest.importorskip("datasets", reason=NO_TRL)
    from rl4rec.genrec.prompts import PromptBuilder, encode_prompt, prompt_ids

    ld = sft
    ds = as_hf_dataset(ld, "seq_sid2sid", "valid")
    assert len(ds) == len(ld.dataset.valid) and set(ds.column_names) == {"prompt", "target", "target_sid", "history", "row", "task"}
    for i in (0, len(ds) - 1):
        row, ex = ds[i], ld.dataset.valid[i]
        sample = PromptBuilder.seq_samples("seq_sid2sid", [ex])[0]
        ids, _ = prompt_ids(ld.builder, ld.tokenizer, sample, max_len=ld.cfg.max_len, reserve=completion_length(ld.trie), phase="rl")
        assert encode_prompt(ld.tokenizer, row["prompt"]) == ids  # the ids rl4rec's trainer would use
        assert (row["target"], row["target_sid"], row["history"], row["row"]) == (ex.target_item_id, ld.dataset.catalog.sid(ex.target_item_id), list(ex.history), i)
    assert len(as_hf_dataset(ld, "title2sid")) == len(ld.dataset.catalog)
    with pytest.raises(ValueError, match="unknown task"):
        as_hf_dataset(ld, "nope")


def test_trl_grpo_trainer_trains_with_an_rl4rec_reward_and_the_trie(sft, tmp_path):
    """3 GRPOTrainer steps, 4 prompts x 8 samples: the rl4rec reward is computed and logged, the
    parameters change, and every sampled completion is a catalogue SID, while the same model
    sampling unconstrained produces completions outside the catalogue."""
    pytest.importorskip("trl", reason=NO_TRL)
    from trl import GRPOConfig, GRPOTrainer

    ld = sft
    model = ld.model
    prompts = as_hf_dataset(ld, "seq_sid2sid", "train").select(range(64))
    enc = ld.tokenizer([prompts[i]["prompt"] for i in range(8)], add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    torch.manual_seed(0)
    free = model.generate(**enc, do_sample=True, temperature=2.0, max_new_tokens=completion_length(ld.trie), num_return_sequences=4,
                          pad_token_id=ld.trie.pad_id, eos_token_id=ld.trie.eos_id)[:, enc["input_ids"].shape[1]:]
    assert (ld.trie.sid_of(free) < 0).any()  # the control: without the trie, off-catalogue completions appear

    constrain_generation(model, ld.trie)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen: list[list[int]] = []

    def record(prompts, completions, completion_ids, **_):
        seen.extend(completion_ids)
        return [0.0] * len(prompts)

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=32, num_generations=8, max_completion_length=completion_length(ld.trie),
                      max_steps=3, learning_rate=1e-3, temperature=2.0, reward_weights=[1.0, 0.0], use_cpu=True, report_to="none",
                      logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0, bf16=False)
    trainer = GRPOTrainer(model=model, reward_funcs=[SIDReward("ranking", ld.trie), record], args=args, train_dataset=prompts, processing_class=ld.tokenizer)
    trainer.train()
    logs = [x for x in trainer.state.log_history if "rewards/rl4rec_ranking/mean" in x]
    assert len(logs) == 3 and all("rl4rec_ranking/invalid_rate" in x for x in logs)
    assert len(seen) == 3 * 32
    ids = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(c) for c in seen], batch_first=True, padding_value=ld.trie.pad_id)
    assert bool((ld.trie.sid_of(ids) >= 0).all()), "a sampled completion is not a catalogue SID"
    assert all(x["rl4rec_ranking/invalid_rate"] == 0 for x in logs)
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed and any("lm_head" in n or "embed" in n for n in changed)


def test_rl4rec_installs_and_imports_without_trl():
    """With ``trl`` and ``datasets`` unimportable, the CLI and the interop module still import."""
    code = ("import sys; sys.modules['trl'] = None; sys.modules['datasets'] = None\n"
            "import rl4rec.cli, rl4rec.genrec.trl_interop, rl4rec.genrec.grpo.trainer\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("script", ["trl_grpo_sid.py", "trl_grpo_text.py"])
def test_the_example_scripts_run(script, tmp_path):
    """Each example trains its smoke SFT model, 2 TRL steps, validates before and after."""
    pytest.importorskip("trl", reason=NO_TRL)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "examples" / script), "--runs-dir", str(tmp_path), "--out", str(tmp_path / "out"),
                          "--steps", "2", "--valid-rows", "20"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["args"]["steps"] == 2 and 0 <= summary["valid_after"]["valid/ndcg@10"] <= 1
    assert (tmp_path / "out" / "model" / "config.json").is_file()


def test_prefix_reward_through_trl_takes_the_catalogue_codes(sft):
    """The target scores 1, another item by its matching leading codes (as rl4rec's prefix reward)."""
    ld = sft
    cat = ld.dataset.catalog
    target = 5
    others = [i for i in range(len(cat)) if i != target]
    reward = SIDReward("prefix", ld.trie, catalog=cat)
    got = reward(["p"] * 3, [""] * 3, completion_ids=[_completion(ld, target), _completion(ld, others[0]), _completion(ld, others[-1])], target=[target] * 3)
    want = [1.0]
    for item in (others[0], others[-1]):
        a, b = tuple(cat.sids.codes[item]), tuple(cat.sids.codes[target])
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
        want.append(n / len(a))
    assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="catalog="):
        SIDReward("prefix", ld.trie)
