"""The LM with latent thought vectors, run prompt-once (spec latent_reasoning.md §2.3).

The release runs the LM twice per example: pass 1 over the whole sequence only to read the
prompt's hidden states, pass 2 with the thought token's embedding replaced by ``z``. With a causal
model the prompt positions of both passes are identical, so here the prompt runs **once** with a
KV cache: its final hidden states feed the latent module, ``z`` is appended on top of the cache,
then the answer tokens (training) or the decoding steps (inference) follow. Same loss, same
gradients (``z`` and the cached keys/values both stay in the autograd graph), about half the
compute; the tests check it against the naive two-pass version. ``num_latents = 0`` is the plain
LM (no thought position), the "SFT without latent" baseline.

    llm = LatentLM(hf_causal_lm, LatentAttention(d), num_latents=1)
    loss = llm.answer_loss(prompt_ids, prompt_mask, targets, target_mask)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rl4rec.genrec.latent.module import LatentAttention
from rl4rec.genrec.model import split_backbone_head

__all__ = ["LatentLM", "save_latent_model", "load_latent_model", "LATENT_FILE"]

LATENT_FILE = "latent"


class LatentLM(nn.Module):
    """A causal LM plus the latent module; ``num_latents`` thought vectors precede the answer."""

    def __init__(self, lm, latent: LatentAttention | None, num_latents: int = 1, thought_id: int | None = None):
        super().__init__()
        if num_latents > 0 and latent is None:
            raise ValueError("num_latents > 0 needs a latent module")
        self.lm = lm
        self.latent = latent
        self.num_latents = int(num_latents)
        self.thought_id = thought_id  # only the naive reference pass (in the tests) uses the token itself

    @property
    def backbone(self):
        return split_backbone_head(self.lm)[0]

    @property
    def head(self):
        return split_backbone_head(self.lm)[1]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    # -- the passes -----------------------------------------------------------------------------
    def prefill(self, ids: torch.Tensor, mask: torch.Tensor):
        """Left-padded prompts once: ``(final hidden states (B, S, d), KV cache)``."""
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.backbone(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        return out.last_hidden_state, out.past_key_values

    def extend(self, embeds: torch.Tensor, cache, mask: torch.Tensor, start: torch.Tensor):
        """Run ``embeds`` (``(R, T, d)``) on top of ``cache``; ``start`` is each row's next position.
        Returns the new positions' hidden states and the grown attention mask."""
        r, t = embeds.shape[:2]
        grown = torch.cat([mask, mask.new_ones(r, t)], 1)
        pos = start[:, None] + torch.arange(t, device=embeds.device)
        dtype = self.lm.get_input_embeddings().weight.dtype
        out = self.backbone(inputs_embeds=embeds.to(dtype), attention_mask=grown, position_ids=pos, past_key_values=cache, use_cache=True)
        return out.last_hidden_state, grown

    def think(self, hidden: torch.Tensor, mask: torch.Tensor, cache):
        """Append the latent vector(s) to the prompt (the ``<|Thought|>`` position(s)).

        Returns ``(hidden state predicting the first answer token (B, d), mask, next positions)``.
        Latent ``i`` attends over the prompt and latents ``1..i-1`` (spec §2.1); noise-GRPO adds
        its noise to the latent itself (:func:`rl4rec.genrec.latent.grpo.score_group`)."""
        lengths = mask.sum(-1)
        for _ in range(self.num_latents):
            z = self.latent(hidden, mask)
            new, mask = self.extend(z[:, None], cache, mask, lengths)
            hidden = torch.cat([hidden, new.to(hidden.dtype)], 1)
            lengths = lengths + 1
        return hidden[:, -1], mask, lengths

    def answer_hidden(self, ids, mask, targets: torch.Tensor) -> torch.Tensor:
        """Hidden states predicting each right-padded target token after each prompt (``(R, L, d)``):
        the state after the latent(s) predicts token 1, the continuation over tokens ``1..L-1`` the
        rest (teacher forcing)."""
        hidden, cache = self.prefill(ids, mask)
        first, mask, lengths = self.think(hidden, mask, cache)
        if targets.shape[1] == 1:
            return first[:, None]
        cont, _ = self.extend(self.embed(targets[:, :-1]), cache, mask, lengths)
        return torch.cat([first[:, None], cont.to(first.dtype)], 1)

    def answer_logprobs(self, ids, mask, targets) -> torch.Tensor:
        """Per-token log-probabilities ``(B, L)`` of right-padded ``targets`` after each prompt."""
        logits = self.head(self.answer_hidden(ids, mask, targets)).float()
        return logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)

    def answer_loss(self, ids, mask, targets, target_mask) -> torch.Tensor:
        """Mean cross-entropy over the supervised answer tokens (title + EOS); the LM head is
        applied at those positions only."""
        logits = self.head(self.answer_hidden(ids, mask, targets)[target_mask]).float()
        return F.cross_entropy(logits, targets[target_mask])


def save_latent_model(llm: LatentLM, tokenizer, path: str | Path, meta: dict[str, Any]) -> Path:
    """The LM (``save_pretrained``), tokenizer, latent module and meta, atomically."""
    from rl4rec.genrec.model import save_model_dir

    latent_meta = {"num_latents": llm.num_latents, "thought_id": llm.thought_id}
    if llm.latent is not None:
        latent_meta.update(hidden_size=llm.latent.hidden_size, rope_base=llm.latent.rope_base)
    extra = {LATENT_FILE: llm.latent.state_dict()} if llm.latent is not None else None
    return save_model_dir(llm.lm, tokenizer, path, {**meta, "latent": latent_meta}, extra_state=extra)


def load_latent_model(path: str | Path, *, dtype: str = "float32") -> tuple[LatentLM, Any, dict[str, Any]]:
    """(LatentLM in eval mode, tokenizer, meta) saved by :func:`save_latent_model`."""
    from rl4rec.genrec.model import load_model_dir

    lm, tok, meta = load_model_dir(path, dtype=dtype)
    lat = meta.get("latent")
    if lat is None:
        raise FileNotFoundError(f"{path} is not a latent-reasoning model (no 'latent' entry in its meta)")
    module = None
    if lat["num_latents"] > 0:
        module = LatentAttention(int(lat["hidden_size"]), float(lat["rope_base"])).to(lm.device)
        module.load_state_dict(torch.load(Path(path) / f"{LATENT_FILE}.pt", map_location=lm.device, weights_only=True))
    llm = LatentLM(lm, module, lat["num_latents"], lat.get("thought_id"))
    llm.eval()
    return llm, tok, meta
