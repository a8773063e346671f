"""Tokenizers with SID tokens: from-scratch BPE and a pretrained folder; exact save/load round trips."""

from __future__ import annotations

import pytest
import torch

from rl4rec.genrec.data.synthetic import SyntheticConfig, make_synthetic
from rl4rec.genrec.model import ModelConfig, build_model, build_tokenizer, load_model_dir, save_model_dir
from rl4rec.genrec.prompts import PromptBuilder, PromptConfig, Sample, encode_answer, prompt_ids
from rl4rec.genrec.tokenizer import EOS_TOKEN, PAD_TOKEN, TokenizerConfig, load_tokenizer, sid_token_strings

TEXTS = [
    'Heavy Duty Drill A-100 with "quotes", commas & ünïcödé',
    "### User Input: \nWhich item has the title: x?\n\n### Response:\n<a_1><b_0><c_3>\n",
    "  leading spaces\tand tabs  ",
]


@pytest.fixture(scope="module")
def catalog():
    return make_synthetic(SyntheticConfig(num_items=40, num_users=10))[0]


@pytest.fixture(scope="module")
def scratch(catalog):
    return build_tokenizer(ModelConfig(), catalog.sids, catalog.titles, TokenizerConfig(vocab_size=400), ["### Response:\n"])


def test_scratch_tokenizer_sid_tokens_are_single_ids(catalog, scratch):
    tok, orig = scratch
    sid_tokens = sid_token_strings(catalog.sids, 256)
    assert len(sid_tokens) == 3 * 256 and len(tok) == orig + len(sid_tokens)
    assert tok.convert_tokens_to_ids(sid_tokens) == list(range(orig, len(tok)))
    assert tok.pad_token == PAD_TOKEN and tok.eos_token == EOS_TOKEN and tok.bos_token_id is None
    sid = catalog.sid(7)
    ids = encode_answer(tok, sid)
    assert tok.convert_ids_to_tokens(ids) == [*catalog.sids.tokens(7), "Ċ", EOS_TOKEN]
    # SID tokens are not special: decoding with skip_special_tokens keeps them
    assert tok.decode(ids, skip_special_tokens=True) == sid + "\n"


def test_scratch_tokenizer_round_trips_text_and_files(tmp_path, catalog, scratch):
    tok, _ = scratch
    for text in [*TEXTS, *catalog.titles[:10]]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level BPE: no unknown token, exact
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.get_vocab() == tok.get_vocab()
    assert (again.pad_token_id, again.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    for text in [*TEXTS, *catalog.titles]:
        assert again(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    builder = PromptBuilder(catalog, PromptConfig())
    sample = Sample("seq_sid2sid", 3, (1, 2, 5))
    assert prompt_ids(builder, again, sample, max_len=512) == prompt_ids(builder, tok, sample, max_len=512)


def _pretrained_folder(path, texts):
    """A tiny 'pretrained' model + tokenizer that knows nothing of SIDs, saved like an HF checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=350, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")  # no pad token, like Qwen base
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok) + 6, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return len(tok)


def test_pretrained_path_adds_sid_tokens_and_mean_initialises_rows(tmp_path, catalog):
    n_orig = _pretrained_folder(tmp_path / "pre", list(catalog.titles) * 3)
    cfg = ModelConfig(path=str(tmp_path / "pre"))
    tok, orig = build_tokenizer(cfg, catalog.sids, tok_cfg=TokenizerConfig(min_codebook=16))
    assert orig == n_orig and len(tok) == n_orig + 3 * 16
    assert tok.pad_token_id == tok.eos_token_id  # pad = EOS when the checkpoint has none (upstream)
    model, meta = build_model(cfg, tok, orig)
    assert meta["orig_vocab_size"] == orig and meta["vocab_size"] == len(tok)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape[0] == len(tok) and head.shape[0] == len(tok)  # grown past the 6 spare rows
    from transformers import AutoModelForCausalLM

    old = AutoModelForCausalLM.from_pretrained(tmp_path / "pre").get_input_embeddings().weight
    torch.testing.assert_close(emb[:orig], old[:orig])  # original rows untouched
    torch.testing.assert_close(emb[orig:], old[:orig].mean(0, keepdim=True).expand(len(tok) - orig, -1))
    torch.testing.assert_close(head[orig:], head[:orig].mean(0, keepdim=True).expand(len(tok) - orig, -1))
    assert len(encode_answer(tok, catalog.sid(3))) == 3 + 2
    # model + tokenizer round trip through save_model_dir / load_model_dir
    save_model_dir(model, tok, tmp_path / "saved", meta)
    model2, tok2, meta2 = load_model_dir(tmp_path / "saved")
    assert tok2.get_vocab() == tok.get_vocab() and meta2 == meta
    ids = torch.tensor([encode_answer(tok, catalog.sid(5))])
    model.eval()
    torch.testing.assert_close(model2(ids).logits, model(ids).logits)


def test_missing_pretrained_folder_is_a_config_error():
    from rl4rec.config import ConfigError, apply_overrides

    with pytest.raises(ConfigError, match="not a folder"):
        apply_overrides(ModelConfig, {}, ["path=/nonexistent/model"])


def test_a_saved_model_folder_reloads_the_tokenizer_it_was_trained_with(tmp_path, catalog, scratch):
    """Next to a model's config.json, AutoTokenizer picks the model type's tokenizer (Qwen2Tokenizer),
    which splits digits and whitespace its own way: every Industrial prompt encoded differently
    from training until load_tokenizer loaded the saved class itself."""
    tok, orig = scratch
    model, meta = build_model(ModelConfig(), tok, orig)
    save_model_dir(model, tok, tmp_path / "m", meta)
    _, again, _ = load_model_dir(tmp_path / "m")
    assert type(again) is type(tok)
    for text in ["Model 12345 and 2024-11", "### User Input: \nCan you", "x  \n\n  y", "Drill A-100, Glove C-117", catalog.sid(3) + "\n"]:
        assert again(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"], text
