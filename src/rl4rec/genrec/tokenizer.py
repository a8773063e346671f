"""Tokenizers with one token per SID code (spec genrec.md §3).

Two ways to get one:

- **from scratch** (:func:`build_scratch_tokenizer`): a small byte-level BPE trained locally with
  the ``tokenizers`` library on the catalog's titles and descriptions plus the fixed prompt text,
  then every SID token ``<a_0> .. <a_{K-1}>, <b_0> ..`` added as an atomic token, plus
  ``<|pad|>`` and ``<|endoftext|>`` (EOS; there is no BOS, as in Qwen). Byte-level BPE has no
  unknown token, so any text round-trips exactly through encode/decode.
- **pretrained** (:func:`add_sid_tokens` + :func:`resize_for_new_tokens`): the model folder's own
  tokenizer with the same SID tokens added; the embedding rows of the new ids start at the mean
  of the existing rows (a neutral start; a random row would make some SIDs a priori likelier).

SID tokens are *added* tokens, not special ones: ``decode(..., skip_special_tokens=True)`` keeps
them, and the text around them is still split by the normal pre-tokenizer. Every code of every
level up to ``max(codebook size, min_codebook)`` gets a token, so the vocabulary does not depend
on which codes a catalog happens to use (spec §3, rl4rec).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rl4rec.config import field
from rl4rec.genrec.sid.codec import LETTERS, SIDCodec

log = logging.getLogger(__name__)

__all__ = [
    "TokenizerConfig",
    "sid_token_strings",
    "build_scratch_tokenizer",
    "add_sid_tokens",
    "resize_for_new_tokens",
    "load_tokenizer",
    "PAD_TOKEN",
    "EOS_TOKEN",
]

PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class TokenizerConfig:
    """How the tokenizer of a from-scratch model is built (ignored with ``model.path``, except
    ``min_codebook``)."""

    vocab_size: int = field(2048, "byte-level BPE vocabulary size, bytes and merges (SID tokens come on top)", ge=300)
    min_frequency: int = field(2, "a merge needs this many occurrences in the catalog text", ge=1)
    descriptions: bool = field(True, "train the BPE on item descriptions as well as titles")
    min_codebook: int = field(256, "add SID tokens for codes 0..max(codebook size, this)-1 on every level", ge=1)


def sid_token_strings(codec: SIDCodec, min_codebook: int = 256) -> list[str]:
    """Every SID token, level by level, codes ascending: ``<a_0> .. <a_255> <b_0> ..``.

    Each level gets ``max(codebook size, largest code + 1, min_codebook)`` tokens, so the
    vocabulary is the same for every catalog built with that codebook size.
    """
    tokens = []
    for level, size in enumerate(codec.codebook_sizes):
        used = int(codec.codes[:, level].max()) + 1 if codec.num_items else 0
        tokens.extend(f"<{LETTERS[level]}_{c}>" for c in range(max(size, used, min_codebook)))
    return tokens


def build_scratch_tokenizer(
    codec: SIDCodec | None,
    texts: Iterable[str],
    cfg: TokenizerConfig = TokenizerConfig(),
    extra_texts: Sequence[str] = (),
    special_tokens: Sequence[str] = (),
):
    """A byte-level BPE over ``texts`` (+ ``extra_texts``, e.g. the prompt templates) with the
    SID tokens of ``codec`` (if any) and ``special_tokens`` (e.g. a thought token) added, wrapped
    as a transformers fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # the prompt text is repeated so its words become single tokens even in tiny catalogs
    bpe.train_from_iterator(itertools.chain(list(extra_texts) * 20, filter(None, texts)), trainer=trainer)
    if codec is not None:
        bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in sid_token_strings(codec, cfg.min_codebook)])
    if special_tokens:
        bpe.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in special_tokens])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)
    tok.padding_side = "left"  # generation pads on the left; training pads itself
    return tok


def add_sid_tokens(tokenizer, codec: SIDCodec, min_codebook: int = 256) -> int:
    """Add the SID tokens to a pretrained tokenizer (in place); give it a pad token if it has
    none (pad = EOS, as upstream). Returns the tokenizer length *before* the additions."""
    from tokenizers import AddedToken

    before = len(tokenizer)
    wanted = sid_token_strings(codec, min_codebook)
    vocab = tokenizer.get_vocab()
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in wanted if t not in vocab])
    if tokenizer.eos_token_id is None:
        raise ValueError("the pretrained tokenizer has no EOS token; completions must end with one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    check_sid_tokens(tokenizer, wanted)
    return before


def check_sid_tokens(tokenizer, tokens: Sequence[str]) -> None:
    """Every SID token must encode to exactly one id (else the trie and the prompts disagree)."""
    for t in tokens[:: max(1, len(tokens) // 64)] + list(tokens[-1:]):
        ids = tokenizer.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"SID token {t} encodes to {len(ids)} ids {ids}; it must be one added token")


def resize_for_new_tokens(model, tokenizer, orig_len: int) -> None:
    """Grow the embedding matrix (and an untied LM head) to hold every tokenizer id; rows of ids
    ``>= orig_len`` are set to the mean of the rows ``< orig_len``.

    Pretrained matrices are often padded past ``len(tokenizer)`` (Qwen: 151,936 rows for 151,665
    tokens); they are never shrunk, so the original ids keep their rows.
    """
    import torch

    n = len(tokenizer)
    if n > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(n, mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[orig_len:n] = emb[:orig_len].mean(0, keepdim=True)
        head = model.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != emb.data_ptr():
            head.weight[orig_len:n] = head.weight[:orig_len].mean(0, keepdim=True)
            if getattr(head, "bias", None) is not None:
                head.bias[orig_len:n] = head.bias[:orig_len].mean()


def load_tokenizer(path: str | Path):
    """A tokenizer saved by ``save_pretrained`` (ours or a pretrained model's), offline.

    Our from-scratch tokenizer is saved as a plain ``TokenizersBackend`` and is loaded as exactly
    that class: next to a model's ``config.json``, ``AutoTokenizer`` would pick the model type's
    tokenizer class (``Qwen2Tokenizer``), whose own pre-tokenizer splits text differently, so the
    reloaded tokenizer would encode prompts unlike the one the model was trained with.
    """
    import json

    from transformers import AutoTokenizer, TokenizersBackend

    path = Path(path)
    cfg_file = path / "tokenizer_config.json"
    declared = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.is_file() else None
    cls = TokenizersBackend if declared == "TokenizersBackend" else AutoTokenizer
    tok = cls.from_pretrained(str(path), local_files_only=True)
    tok.padding_side = "left"
    return tok
