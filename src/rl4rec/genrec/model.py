"""Causal LMs for generative recommendation: Qwen2-style presets built from config, or a local
pretrained checkpoint; optional LoRA (spec genrec.md §3).

Nothing is ever downloaded: presets build ``Qwen2ForCausalLM`` from a ``Qwen2Config`` with
random weights (for CPU runs and tests), and ``model.path`` loads a folder written by
``save_pretrained`` with ``local_files_only=True``.

    tok, orig_vocab_size = build_tokenizer(ModelConfig(preset="tiny"), catalog.sids)
    model, meta = build_model(ModelConfig(preset="tiny"), tok, orig_vocab_size)
    save_model_dir(model, tok, run_dir / "model" / "best", meta)
    model, tok, meta = load_model_dir(run_dir / "model" / "best")
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rl4rec.config import ConfigError, field

log = logging.getLogger(__name__)

__all__ = ["ModelConfig", "PRESETS", "build_tokenizer", "build_model", "save_model_dir", "load_model_dir", "split_backbone_head"]

#: Qwen2-style shapes; parameters exclude the (vocabulary-sized) embedding matrix
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    "small": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2),
    "base": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4),
    "medium": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4),
}
MODEL_META = "rl4rec_genrec.json"


@dataclass(frozen=True)
class ModelConfig:
    """The language model: a preset built from config, or a local pretrained folder."""

    preset: Literal["tiny", "small", "base", "medium"] = field("tiny", "Qwen2-style size built from config, random init (ignored with path)", short="")
    path: str = field("", "local folder of a pretrained causal LM + tokenizer (save_pretrained layout); never downloaded")
    hidden_size: int = field(0, "override the preset's hidden size (0 = preset)", ge=0, short="d")
    num_layers: int = field(0, "override the preset's layer count (0 = preset)", ge=0, short="layers")
    max_positions: int = field(1024, "maximum sequence length of a from-scratch model", ge=16)
    tie_embeddings: bool = field(True, "tie input embeddings and LM head of a from-scratch model")
    dropout: float = field(0.0, "attention dropout of a from-scratch model", ge=0.0, lt=1.0)
    init_std: float = field(0.0, "weight init std of a from-scratch model (0 = 1/sqrt(hidden size))", ge=0.0)
    dtype: Literal["float32", "bfloat16", "float16"] = field("float32", "weights dtype (CPU: float32)")
    attn_implementation: Literal["sdpa", "eager"] = field("sdpa", "attention kernel")
    lora: bool = field(False, "train LoRA adapters (peft) instead of all weights; SID token rows stay trainable")
    lora_r: int = field(16, "LoRA rank", ge=1)
    lora_alpha: float = field(32.0, "LoRA alpha", gt=0.0)
    lora_dropout: float = field(0.05, "LoRA dropout", ge=0.0, lt=1.0)
    lora_targets: tuple[str, ...] = field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), "module names that get LoRA adapters"
    )

    def check(self) -> None:
        if self.path and not Path(self.path).is_dir():
            raise ConfigError(f"model.path: {self.path} is not a folder (a local save_pretrained checkpoint is required; nothing is downloaded)")


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def build_tokenizer(cfg: ModelConfig, codec, texts=(), tok_cfg=None, extra_texts=()) -> tuple[Any, int]:
    """(tokenizer, orig_vocab_size): the ids ``>= orig_vocab_size`` are the added SID tokens.

    From scratch: a BPE over ``texts`` + ``extra_texts`` (see :mod:`rl4rec.genrec.tokenizer`).
    Pretrained: the folder's tokenizer with the SID tokens added.
    """
    from rl4rec.genrec.tokenizer import TokenizerConfig, add_sid_tokens, build_scratch_tokenizer, load_tokenizer

    tok_cfg = tok_cfg or TokenizerConfig()
    if cfg.path:
        tok = load_tokenizer(cfg.path)
        return tok, add_sid_tokens(tok, codec, tok_cfg.min_codebook)
    tok = build_scratch_tokenizer(codec, texts, tok_cfg, extra_texts)
    return tok, tok.convert_tokens_to_ids("<a_0>")  # BPE + specials come first, SID tokens after


def build_model(cfg: ModelConfig, tok, orig_vocab_size: int) -> tuple[Any, dict[str, Any]]:
    """(model, meta) for ``tok``: a preset with random weights sized to the tokenizer, or the
    pretrained folder with its embeddings resized (new rows = mean of the old ones); LoRA on top
    when asked."""
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from rl4rec.genrec.tokenizer import resize_for_new_tokens

    if cfg.path:
        model = AutoModelForCausalLM.from_pretrained(
            cfg.path, local_files_only=True, dtype=_torch_dtype(cfg.dtype), attn_implementation=cfg.attn_implementation
        )
        resize_for_new_tokens(model, tok, orig_vocab_size)
        source = str(Path(cfg.path).resolve())
    else:
        shape = dict(PRESETS[cfg.preset])
        if cfg.hidden_size:
            shape["hidden_size"] = cfg.hidden_size
        if cfg.num_layers:
            shape["num_hidden_layers"] = cfg.num_layers
        config = Qwen2Config(
            vocab_size=len(tok),
            max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=cfg.tie_embeddings,
            attention_dropout=cfg.dropout,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=None,
            use_cache=True,
            # HF's default std 0.02 suits d ~ 1000; at d = 64 it leaves attention logits ~0, and
            # a tiny model sat on a plateau for 1000+ steps before attending to the newest item.
            # Fan-in scaling (1/sqrt(d)) learned the synthetic next-item rule in ~300 steps.
            initializer_range=cfg.init_std or shape["hidden_size"] ** -0.5,
            **shape,
        )
        config._attn_implementation = cfg.attn_implementation
        model = Qwen2ForCausalLM(config).to(_torch_dtype(cfg.dtype))
        source = f"preset:{cfg.preset}"
    model.generation_config.pad_token_id = tok.pad_token_id
    if cfg.lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover - the lora extra is optional
            raise ImportError("model.lora=true needs peft: pip install 'rl4rec[lora]'") from err
        # the SID rows are new: without training them the model could not tell SIDs apart; an
        # untied LM head (large pretrained models) needs its new rows trained too (spec §3 rl4rec)
        new_ids = list(range(orig_vocab_size, len(tok)))
        rows = {"embed_tokens": new_ids} if new_ids else None
        head = model.get_output_embeddings()
        if rows and head is not None and head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            rows["lm_head"] = new_ids
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM", trainable_token_indices=rows)
        model = get_peft_model(model, lcfg)
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = {"source": source, "orig_vocab_size": int(orig_vocab_size), "vocab_size": len(tok), "params": int(n_params), "trainable_params": int(n_train)}
    log.info("model %s: %.2fM parameters (%.2fM trainable), vocabulary %d (%d added SID tokens)", source, n_params / 1e6, n_train / 1e6, len(tok), len(tok) - orig_vocab_size)
    return model, meta


def split_backbone_head(model):
    """(decoder stack, LM head) of a causal LM, through a peft wrapper if any: the training loss
    applies the head only at answer positions, which saves most of the vocabulary matmul."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def save_model_dir(model, tokenizer, path: str | Path, meta: dict[str, Any], extra_state: dict[str, Any] | None = None) -> Path:
    """``save_pretrained`` model + tokenizer + ``rl4rec_genrec.json`` into ``path``, atomically:
    written to a temporary sibling first, then swapped in, so a reader never sees half a folder.
    ``extra_state`` (``{name: state_dict}``) adds ``<name>.pt`` files, e.g. a latent module."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per checkpoint of a tiny model is noise in run.log
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # LoRA: save a plain model, the adapters merged into a copy
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MODEL_META).write_text(json.dumps(meta, indent=2))
    if extra_state:
        import torch

        for name, state in extra_state.items():
            torch.save(state, tmp / f"{name}.pt")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_model_dir(path: str | Path, *, dtype: str = "float32") -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, meta) from a folder written by :func:`save_model_dir`."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from rl4rec.genrec.tokenizer import load_tokenizer

    hf_logging.disable_progress_bar()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no saved model (config.json missing)")
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=_torch_dtype(dtype))
    model.eval()
    tok = load_tokenizer(path)
    meta_path = path / MODEL_META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return model, tok, meta
