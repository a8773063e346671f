"""Latent reasoning: the latent module, the prompt-once passes, the title trie and beam search."""

from __future__ import annotations

import math

import pytest
import torch

from rl4rec.genrec.decoding import left_pad
from rl4rec.genrec.latent.decode import title_beam_search
from rl4rec.genrec.latent.model import LatentLM, load_latent_model, save_latent_model
from rl4rec.genrec.latent.module import LatentAttention
from rl4rec.genrec.latent.titles import TitleIndex, TitleTrie, normalize_title

V, EOS, PAD, THOUGHT = 40, 1, 0, 39


def tiny_lm(seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, tie_word_embeddings=True, initializer_range=0.3)
    return Qwen2ForCausalLM(cfg).eval()


def naive_answer_logits(llm: LatentLM, prompt: list[int], target: list[int]) -> torch.Tensor:
    """The release's two passes for one example: pass 1 over prompt + thought token(s) + target,
    the thought found **by token id**; pass 2 with its embedding replaced by ``z``. Returns the
    logits predicting ``target`` (``(L, V)``), differentiable."""
    dev = llm.lm.get_input_embeddings().weight.device
    n = llm.num_latents
    if n and llm.thought_id is None:
        raise ValueError("the naive pass needs thought_id")
    full = torch.tensor([prompt + [llm.thought_id] * n + target[:-1]], device=dev)
    embeds = llm.embed(full)
    thought = (full[0] == llm.thought_id).nonzero().flatten().tolist() if n else []
    for t in thought:  # latent i reads the prompt and latents before it, from a full pass
        hidden = llm.backbone(inputs_embeds=embeds).last_hidden_state
        z = llm.latent(hidden[:, :t], torch.ones(1, t, dtype=torch.long, device=dev))
        embeds = torch.cat([embeds[:, :t], z[:, None].to(embeds.dtype), embeds[:, t + 1 :]], 1)
    logits = llm.lm(inputs_embeds=embeds).logits[0]
    return logits[len(prompt) + n - 1 :].float()


@torch.no_grad()
def score_titles(llm: LatentLM, prompt: list[int], paths: list[list[int]], length_penalty: float = 1.0) -> torch.Tensor:
    """Brute force: each title path's ``sum log p / length ** length_penalty`` after ``prompt``,
    every path scored by the naive two-pass forward of its own (no cache, no trie)."""
    out = []
    for path in paths:
        logits = naive_answer_logits(llm, list(prompt), list(path))
        lp = logits.log_softmax(-1).gather(-1, torch.tensor(path, device=logits.device)[:, None]).sum()
        out.append(float(lp) / len(path) ** length_penalty)
    return torch.tensor(out)


def reference_latent(module: LatentAttention, h: torch.Tensor) -> torch.Tensor:
    """One unpadded row, written out with complex rotations: dims (j, j + d/2) form x_j + i x_{j+d/2},
    rotated by exp(i * pos * base^(-2j/d))."""
    d = h.shape[-1]
    q, k, v = module.q_proj(h[-1]), module.k_proj(h), module.v_proj(h)
    theta = module.rope_base ** (-torch.arange(0, d, 2).double() / d)

    def rot(x, pos):
        c = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double()) * torch.exp(1j * pos * theta)
        return torch.cat([c.real, c.imag], -1)

    s = h.shape[0]
    qr = rot(q, s - 1)
    scores = torch.stack([(qr * rot(k[j], j)).sum() for j in range(s)]) / math.sqrt(d)
    return (scores.softmax(0)[:, None] * v.double()).sum(0)


def test_latent_module_matches_a_hand_written_reference_and_ignores_padding():
    torch.manual_seed(0)
    m = LatentAttention(8)
    h = torch.randn(5, 8)
    ref = reference_latent(m, h)
    z = m(h[None], torch.ones(1, 5, dtype=torch.long))
    assert z.shape == (1, 8)
    torch.testing.assert_close(z[0].double(), ref, atol=1e-5, rtol=1e-5)
    # left padding: garbage hidden states under the mask change nothing, and the position shift
    # of rotary attention cancels out
    padded = torch.cat([torch.randn(3, 8) * 100, h])[None]
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    torch.testing.assert_close(m(padded, mask)[0], z[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="last position"):
        m(padded, torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]]))


@pytest.mark.parametrize("num_latents", [0, 1, 2])
def test_prompt_once_pass_equals_the_naive_two_pass_version(num_latents):
    """Spec §2.3: prompt once with a KV cache + [z, target] on top == the release's two full passes
    (thought found by token id), for logits and for gradients."""
    lm = tiny_lm()
    torch.manual_seed(1)
    llm = LatentLM(lm, LatentAttention(32) if num_latents else None, num_latents, THOUGHT)
    prompts, targets = [[5, 6, 7, 8, 9], [10, 11, 12]], [[20, 21, EOS], [22, EOS]]
    ids, mask = left_pad(prompts, PAD, "cpu")
    tg = torch.tensor([[20, 21, EOS], [22, EOS, PAD]])
    lp = llm.answer_logprobs(ids, mask, tg)
    loss = -(lp[0].sum() + lp[1, :2].sum())
    loss.backward()
    fast = {n: p.grad.clone() for n, p in llm.named_parameters() if p.grad is not None}
    llm.zero_grad()
    naive = 0
    for b in range(2):
        logits = naive_answer_logits(llm, prompts[b], targets[b])
        ref = logits.log_softmax(-1).gather(-1, torch.tensor(targets[b])[:, None]).squeeze(-1)
        torch.testing.assert_close(lp[b, : len(targets[b])], ref, atol=1e-5, rtol=1e-5)
        naive = naive - ref.sum()
    naive.backward()
    for n, p in llm.named_parameters():
        if n in fast:
            torch.testing.assert_close(fast[n], p.grad, atol=1e-4, rtol=1e-3, msg=n)
    if num_latents:
        assert llm.latent.q_proj.weight.grad.abs().sum() > 0  # the module learns through z


def test_latent_model_round_trips_through_save_and_load(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({f"t{i}": i for i in range(V)}, unk_token="t2")), eos_token="t1", pad_token="t0")
    llm = LatentLM(tiny_lm(), LatentAttention(32), 1, THOUGHT)
    save_latent_model(llm, tok, tmp_path / "m", {"source": "test"})
    back, _, meta = load_latent_model(tmp_path / "m")
    assert meta["latent"]["num_latents"] == 1 and back.thought_id == THOUGHT
    ids, mask = left_pad([[5, 6, 7]], PAD, "cpu")
    tg = torch.tensor([[20, EOS]])
    torch.testing.assert_close(back.answer_logprobs(ids, mask, tg), llm.eval().answer_logprobs(ids, mask, tg))


# --------------------------------------------------------------------------- titles and the trie

PATHS = [[2, 3, EOS], [2, 4, EOS], [2, 3, 5, EOS], [6, EOS], [6, 7, 8, 9, EOS], [3, EOS], [4, 4, 4, EOS]]


def test_title_index_groups_identical_normalised_titles():
    idx = TitleIndex.from_titles(['Greatest Hits', ' "Greatest Hits" ', "Abbey Road", "Greatest Hits\n"])
    assert idx.titles == ["Greatest Hits", "Abbey Road"]
    assert idx.group_of_item.tolist() == [0, 0, 1, 0]
    assert idx.shared([0, 2]).tolist() == [True, False]
    assert idx.group_of_text('"Abbey Road"\n') == 1 and idx.group_of_text("Nope") == -1
    assert normalize_title(' \n"x y" ') == "x y"


def test_title_trie_allowed_tokens_and_steps_match_enumeration():
    trie = TitleTrie(PATHS, list(range(len(PATHS))), EOS)
    prefixes = {tuple(p[:i]) for p in PATHS for i in range(len(p))}
    node_of = {(): 0}
    for pre in sorted(prefixes, key=len):  # walk every prefix with step()
        for tok in range(V):
            child = int(trie.step(torch.tensor([node_of[pre]]), torch.tensor([tok]), V))
            extended = pre + (tok,)
            exists = any(tuple(p[: len(extended)]) == extended for p in PATHS)
            assert (child >= 0) == exists, (pre, tok)
            if exists:
                node_of[extended] = child
    nodes = torch.tensor([node_of[p] for p in sorted(prefixes)])
    mask = trie.allowed(nodes, V)
    for row, pre in enumerate(sorted(prefixes)):
        want = {p[len(pre)] for p in PATHS if tuple(p[: len(pre)]) == pre}
        assert set(mask[row].nonzero().flatten().tolist()) == want
    for g, p in enumerate(PATHS):
        assert int(trie.end_group[node_of[tuple(p)]]) == g
    assert trie.max_depth == 5 and int(trie.max_total[node_of[(6,)]]) == 5
    with pytest.raises(ValueError, match="EOS"):
        TitleTrie([[2, 3]], [0], EOS)


@pytest.mark.parametrize("num_latents", [0, 1])
def test_title_beam_search_equals_exhaustive_scoring_on_a_small_catalogue(num_latents):
    llm = LatentLM(tiny_lm(3), LatentAttention(32) if num_latents else None, num_latents, THOUGHT).eval()
    trie = TitleTrie(PATHS, list(range(len(PATHS))), EOS)
    prompts = [[5, 6, 7, 8, 9], [10, 11, 12], [13]]
    both = title_beam_search(llm, prompts, trie, num_beams=len(PATHS), pad_id=PAD)
    for b, p in enumerate(prompts):
        exhaustive = score_titles(llm, p, PATHS)
        order = exhaustive.argsort(descending=True)
        assert both.groups[b].tolist() == order.tolist()
        torch.testing.assert_close(both.scores[b], exhaustive[order], atol=1e-5, rtol=1e-5)
        alone = title_beam_search(llm, [p], trie, num_beams=len(PATHS), pad_id=PAD)  # batching changes nothing
        assert alone.groups[0].tolist() == both.groups[b].tolist()
    for lp in (0.0, 2.0):  # any length penalty: still exact with enough beams
        got = title_beam_search(llm, prompts[:1], trie, num_beams=len(PATHS), pad_id=PAD, length_penalty=lp)
        assert got.groups[0].tolist() == score_titles(llm, prompts[0], PATHS, lp).argsort(descending=True).tolist()
    narrow = title_beam_search(llm, prompts, trie, num_beams=3, pad_id=PAD)
    assert narrow.groups.shape == (3, 3) and bool((narrow.groups >= 0).all())  # always catalogue titles
    # fewer reachable titles than beams: padded with -1, never an invented title
    small = TitleTrie(PATHS[:2], [0, 1], EOS)
    few = title_beam_search(llm, prompts[:1], small, num_beams=4, pad_id=PAD)
    assert sorted(few.groups[0, :2].tolist()) == [0, 1] and few.groups[0, 2:].tolist() == [-1, -1]


def test_title_trie_from_a_tokenizer_encodes_titles_like_the_training_target():
    from rl4rec.genrec.latent.prompts import THOUGHT_TOKEN, encode_target
    from rl4rec.genrec.tokenizer import TokenizerConfig, build_scratch_tokenizer

    titles = ["Abbey Road", "Greatest Hits", "Greatest Hits", "Kind of Blue"]
    tok = build_scratch_tokenizer(None, titles * 5, TokenizerConfig(vocab_size=300, min_frequency=1), special_tokens=[THOUGHT_TOKEN])
    assert len(tok.encode(THOUGHT_TOKEN, add_special_tokens=False)) == 1
    idx = TitleIndex.from_titles(titles)
    trie = TitleTrie.from_index(idx, tok)
    assert trie.num_paths == 3  # identical titles share one path
    path = encode_target(tok, "Kind of Blue")
    node = torch.zeros(1, dtype=torch.long)
    for t in path:
        node = trie.step(node, torch.tensor([t]), len(tok))
    assert int(trie.end_group[node]) == 2
    assert tok.decode(path[:-1]) == '"Kind of Blue"\n'
