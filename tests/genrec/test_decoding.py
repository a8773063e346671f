"""Constrained decoding against brute force: beam search, exact top-K, sampling, the HF processor."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList, Qwen2Config, Qwen2ForCausalLM

from rl4rec.genrec.data.catalog import ItemCatalog
from rl4rec.genrec.decoding import (
    DeadEndError,
    ItemTrie,
    TrieLogitsProcessor,
    constrained_beam_search,
    constrained_sample,
    exact_top_k,
    generation_config,
    left_pad,
    prefix_allowed_tokens_fn,
)
from rl4rec.genrec.sid.codec import SIDCodec

V, EOS, PAD, NL = 60, 1, 0, 2  # a toy vocabulary: ids 10.. are SID tokens, 40.. prompt words


def _model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, initializer_range=0.5)
    return Qwen2ForCausalLM(cfg).eval()  # a large init: peaked, prompt-dependent distributions


def _grid_trie(levels=(4, 4, 4)) -> ItemTrie:
    """Every combination of per-level codes; level l uses token ids 10 + 10 l + code."""
    seqs = [[10 + 10 * lv + c for lv, c in enumerate(codes)] for codes in itertools.product(*(range(k) for k in levels))]
    return ItemTrie(seqs, [NL, EOS], PAD, [[i] for i in range(len(seqs))])


PROMPTS = [[40, 41, 42, 43, 44], [45, 46], [47, 48, 49, 50, 51, 52, 53, 54]]  # different lengths: left padding


@torch.no_grad()
def score_items(model, prompt: Sequence[int], trie: ItemTrie, sids: Sequence[int] | None = None, batch_size: int = 256) -> torch.Tensor:
    """Brute force: the summed SID-token log-probabilities of each SID after ``prompt``, each
    scored by its own full forward pass (no cache, no trie). The reference the tests check the
    search against; O(#SIDs) forwards, so for small catalogs only."""
    sids = list(range(trie.num_sids)) if sids is None else list(sids)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(sids), batch_size):
        chunk = [trie.sequences[g] for g in sids[i : i + batch_size]]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), len(prompt) + width), trie.pad_id, dtype=torch.long)
        ids[:, : len(prompt)] = torch.as_tensor(list(prompt))
        for r, c in enumerate(chunk):
            ids[r, len(prompt) : len(prompt) + len(c)] = torch.as_tensor(c)
        logp = torch.log_softmax(model(input_ids=ids.to(device)).logits.float(), -1)
        for r, c in enumerate(chunk):
            pos = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(c), device=device)
            out.append(logp[r, pos, torch.as_tensor(c, device=device)].sum())
    return torch.stack(out)


def _brute_top(model, trie, k):
    out = []
    for p in PROMPTS:
        s = score_items(model, p, trie)
        top = s.topk(k)
        out.append((top.indices.tolist(), top.values))
    return out


@pytest.mark.parametrize("k", [1, 7])
def test_exact_top_k_equals_brute_force(k):
    model, trie = _model(), _grid_trie()
    ex = exact_top_k(model, PROMPTS, trie, k)
    for b, (idx, vals) in enumerate(_brute_top(model, trie, k)):
        assert ex.sid_index[b].tolist() == idx
        torch.testing.assert_close(ex.scores[b], vals, atol=1e-4, rtol=1e-4)


def test_beam_search_is_exact_when_the_beams_hold_every_prefix():
    model, trie = _model(1), _grid_trie()
    assert trie.max_width == 16  # 4 x 4 two-token prefixes
    out = constrained_beam_search(model, PROMPTS, trie, num_beams=16)
    for b, (idx, vals) in enumerate(_brute_top(model, trie, 16)):
        assert out.sid_index[b].tolist() == idx
        torch.testing.assert_close(out.scores[b], vals, atol=1e-4, rtol=1e-4)


def test_narrow_beam_scores_are_true_scores_and_below_the_exact_top_k():
    model, trie = _model(2), _grid_trie((6, 6, 5))
    out = constrained_beam_search(model, PROMPTS, trie, num_beams=4)
    ex = exact_top_k(model, PROMPTS, trie, 4)
    for b, p in enumerate(PROMPTS):
        sids = out.sid_index[b].tolist()
        assert len(set(sids)) == 4
        torch.testing.assert_close(out.scores[b], score_items(model, p, trie, sids), atol=1e-4, rtol=1e-4)
        assert torch.all(out.scores[b][:-1] >= out.scores[b][1:])
        assert torch.all(ex.scores[b] >= out.scores[b] - 1e-5)
    # per-token log-probs add up to the score; the forced suffix follows every SID
    torch.testing.assert_close(out.token_logprobs.sum(-1), out.scores)
    assert (out.token_ids[..., 3:] == torch.tensor([NL, EOS])).all() and out.completion_mask.all()


def test_varying_lengths_and_a_sid_that_prefixes_another():
    seqs = [[10], [10, 20], [10, 21, 30], [11, 20], [12, 22, 31, 35], [12, 22, 32]]
    trie = ItemTrie(seqs, [NL, EOS], PAD, [[0], [1, 2], [3], [4], [5], [6]])  # SID 1 is shared by items 1, 2
    model = _model(3)
    ex = exact_top_k(model, PROMPTS, trie, 6)
    for b, p in enumerate(PROMPTS):
        brute = score_items(model, p, trie)
        assert ex.sid_index[b].tolist() == brute.topk(6).indices.tolist()
        torch.testing.assert_close(ex.scores[b], brute.topk(6).values, atol=1e-4, rtol=1e-4)
    out = constrained_beam_search(model, PROMPTS, trie, num_beams=3)
    assert set(out.items.flatten().tolist()) <= {0, 1, 3, 4, 5, 6}  # a shared SID names its lowest item
    row = out.token_ids[0, 0][out.completion_mask[0, 0]].tolist()
    assert tuple(row[:-2]) in set(map(tuple, seqs)) and row[-2:] == [NL, EOS]


def test_hf_generate_with_the_processor_equals_our_beam_search_and_stays_valid():
    model, trie = _model(4), _grid_trie((5, 3, 4))
    ids, mask = left_pad(PROMPTS, PAD, "cpu")
    w = 8
    proc = TrieLogitsProcessor(trie, ids.shape[1])
    hf = model.generate(input_ids=ids, attention_mask=mask, logits_processor=LogitsProcessorList([proc]), generation_config=generation_config(trie, num_beams=w, num_return_sequences=w))
    ours = constrained_beam_search(model, PROMPTS, trie, num_beams=w)
    assert hf[:, ids.shape[1] :].view(len(PROMPTS), w, -1).tolist() == ours.token_ids.tolist()
    # the per-row callback (upstream style) agrees too, on the SID tokens (max_new_tokens = SID length)
    gc = generation_config(trie, num_beams=w, num_return_sequences=w)
    gc.max_new_tokens = trie.max_sid_len
    hf2 = model.generate(input_ids=ids, attention_mask=mask, prefix_allowed_tokens_fn=prefix_allowed_tokens_fn(trie, ids.shape[1]), generation_config=gc)
    assert hf2[:, ids.shape[1] :].view(len(PROMPTS), w, -1).tolist() == ours.token_ids[..., :3].tolist()
    # sampling through HF: every completion is a catalog SID + "\n" + EOS
    valid = {tuple(s) + (NL, EOS) for s in trie.sequences}
    proc = TrieLogitsProcessor(trie, ids.shape[1], on_dead_end="raise")
    torch.manual_seed(0)
    sampled = model.generate(input_ids=ids, attention_mask=mask, logits_processor=LogitsProcessorList([proc]), generation_config=generation_config(trie, do_sample=True, num_return_sequences=16, temperature=2.0))
    assert {tuple(r) for r in sampled[:, ids.shape[1] :].tolist()} <= valid


def test_constrained_sampling_is_valid_and_follows_the_renormalised_distribution():
    model, trie = _model(5), _grid_trie((2, 2, 2))
    g = torch.Generator().manual_seed(0)
    out = constrained_sample(model, PROMPTS[:1], trie, num_samples=4000, generator=g)
    assert out.sid_index.shape == (1, 4000) and out.completion_mask.all()
    # the exact sampling distribution: per-step softmax renormalised over the allowed tokens
    prompt = PROMPTS[0]
    probs = torch.zeros(trie.num_sids)
    for sid, seq in enumerate(trie.sequences):
        p = 1.0
        for d in range(3):
            logits = model(input_ids=torch.tensor([prompt + list(seq[:d])])).logits[0, -1]
            allowed = sorted({s[d] for s in trie.sequences if list(s[:d]) == list(seq[:d])})
            p *= torch.softmax(logits[allowed], -1)[allowed.index(seq[d])].item()
        probs[sid] = p
    freq = torch.bincount(out.sid_index[0], minlength=trie.num_sids).float() / 4000
    assert (freq - probs).abs().max() < 0.03
    # scores are the model's unconstrained log-probs of the drawn tokens
    brute = score_items(model, prompt, trie)
    torch.testing.assert_close(out.scores[0], brute[out.sid_index[0]], atol=1e-4, rtol=1e-4)
    # a near-zero temperature samples the greedy path
    cold = constrained_sample(model, PROMPTS, trie, num_samples=3, temperature=1e-4, generator=g)
    greedy = constrained_beam_search(model, PROMPTS, trie, num_beams=1)
    assert (cold.sid_index == greedy.sid_index).all()


def test_dead_ends_are_errors_never_unconstrained(caplog):
    model, trie = _model(), _grid_trie((2, 2, 2))
    with pytest.raises(ValueError, match="only 8 distinct SIDs"):
        constrained_beam_search(model, PROMPTS, trie, num_beams=9)
    ids = torch.tensor([[40, 41, 10, 99]])  # 99 is no trie token
    proc = TrieLogitsProcessor(trie, 2, on_dead_end="raise")
    with pytest.raises(DeadEndError):
        proc(ids, torch.zeros(1, V))
    soft = TrieLogitsProcessor(trie, 2)
    with caplog.at_level("WARNING"):
        scores = soft(ids, torch.zeros(1, V))
        soft(ids, torch.zeros(1, V))
    assert torch.isfinite(scores[0]).nonzero().flatten().tolist() == [PAD, EOS]  # only the end, never free text
    assert soft.dead_rows == 2 and caplog.text.count("left the item trie") == 1  # counted, and said once
    with pytest.raises(ValueError, match="empty prompt"):
        constrained_beam_search(model, [[]], trie, num_beams=2)


def test_trie_from_catalog_groups_items_sharing_a_sid():
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    codes = np.array([[0, 1], [1, 0], [0, 1], [1, 1]])  # items 0 and 2 share <a_0><b_1>
    catalog = ItemCatalog(("w", "x", "y", "z"), ("",) * 4, SIDCodec(codes))
    vocab = {"<pad>": 0, "<eos>": 1, "\n": 2, "a": 3}
    bpe = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bpe.add_tokens([AddedToken(t, normalized=False) for t in ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "\n"]])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    trie = ItemTrie.from_catalog(catalog, tok)
    assert trie.num_sids == 3 and trie.sid_items == [[0, 2], [1], [3]]
    assert trie.item_sid.tolist() == [0, 1, 0, 2] and trie.sid_first_item.tolist() == [0, 1, 3]
    # a generated SID counts for every item carrying it: rewards can resolve it to the target
    from rl4rec.genrec.decoding import _result

    out = _result(trie, torch.tensor([[0, 2], [0, 1]]), torch.zeros(2, 2), torch.zeros(2, 2, 2))
    assert out.items.tolist() == [[0, 3], [0, 1]]
    assert out.items_for_targets(trie, torch.tensor([2, 3])).tolist() == [[2, 3], [0, 1]]


def test_sid_of_reads_whole_answers_only_brute_force():
    """``sid_of`` of random token rows (SID tokens, suffix, pad; ragged) equals a brute-force check:
    the row is ``SID + [NL, EOS]`` then only EOS/pad, with SIDs that prefix others included."""
    seqs = [[10], [10, 20], [10, 21, 30], [11, 20], [12, 22, 31, 35], [12, 22, 32]]
    trie = ItemTrie(seqs, [NL, EOS], PAD, [[i] for i in range(len(seqs))])
    alphabet = [10, 11, 12, 20, 21, 22, 30, 31, 32, 35, NL, EOS, PAD, 99]
    gen = torch.Generator().manual_seed(0)
    rows = torch.as_tensor(alphabet)[torch.randint(len(alphabet), (4000, 7), generator=gen)]
    for i, s in enumerate(seqs[:6] * 10):  # plant valid answers (some padded, some ending in EOS)
        rows[i] = torch.as_tensor([*s, NL, EOS] + [EOS if i % 2 else PAD] * (5 - len(s)))
    want = []
    for r in rows.tolist():
        sid = -1
        for g, s in enumerate(seqs):
            n = len(s)
            if r[:n] == s and r[n : n + 2] == [NL, EOS] and all(t in (EOS, PAD) for t in r[n + 2 :]):
                sid = g
        want.append(sid)
    assert trie.sid_of(rows).tolist() == want
    assert sum(w >= 0 for w in want) >= 60
