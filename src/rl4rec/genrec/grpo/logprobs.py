"""Per-token log-probabilities of G completions per prompt, with the prompt run once per group.

TRL (and upstream MiniOneRec) concatenate every completion with its own copy of the prompt, so a
group of G = 16 completions of 5 tokens after a 100-token prompt costs 16 x 105 token positions
forward and backward. Here the prompt is run once with a KV cache, the cache is repeated for the
G completions (a differentiable ``repeat_interleave``, so gradients still reach the prompt's
keys and values), and only the completion tokens are run on top: 100 + 16 x 5 positions. The
log-probs are the same as the concatenated computation (tested), and so are their gradients.

    lp = completion_logprobs(model, prompts, completions, group_size=16)   # (B*G, T)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rl4rec.genrec.decoding import prefill

__all__ = ["completion_logprobs", "trie_allowed"]


def trie_allowed(trie, completions: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``(M, T, vocab_size)`` bool: the tokens the trie allows at each completion position (the
    node reached by the tokens before it). Forced positions (``"\n"``, EOS) allow one token."""
    nodes = trie.path(completions)[:, :-1].clamp(min=0)  # (M, T); a row off the trie: the root's tokens
    allowed = completions.new_zeros((*completions.shape, vocab_size), dtype=torch.bool)
    allowed[:, :, trie.columns.to(nodes.device)] = trie.child.to(nodes.device)[nodes] >= 0
    return allowed


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, allowed: torch.Tensor | None = None) -> torch.Tensor:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if allowed is not None:  # the constrained policy: renormalised over the allowed tokens
        logits = logits.masked_fill(~allowed, float("-inf"))
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def completion_logprobs(
    model,
    prompts: Sequence[Sequence[int]],
    completions: torch.Tensor,
    *,
    group_size: int,
    pad_id: int,
    temperature: float = 1.0,
    trie=None,
) -> torch.Tensor:
    """``(B*G, T)`` log-probs of ``completions`` (``(B*G, T)``; rows ``b*G .. b*G+G-1`` answer
    ``prompts[b]``) under ``model``, computed with gradients when grad mode is on. With ``trie``,
    the log-probs of the trie-constrained policy (softmax over the allowed tokens only), else of
    the whole vocabulary.

    Positions after a completion's EOS hold pad ids; their log-probs are computed but meaningless
    (mask them). The causal mask keeps them from influencing earlier positions.
    """
    b, g = len(prompts), group_size
    if completions.shape[0] != b * g:
        raise ValueError(f"{completions.shape[0]} completions for {b} prompts x {g}")
    device = next(model.parameters()).device
    logits, cache, mask, lengths = prefill(model, prompts, pad_id)
    completions = completions.to(device)
    allowed = trie_allowed(trie, completions, logits.shape[-1]) if trie is not None else None
    first = _token_logprobs(logits.repeat_interleave(g, 0), completions[:, 0], temperature, None if allowed is None else allowed[:, 0])
    t = completions.shape[1]
    if t == 1:
        return first[:, None]
    for layer in cache.layers:  # the prompt's keys/values, once per completion (differentiable)
        layer.keys = layer.keys.repeat_interleave(g, 0)
        layer.values = layer.values.repeat_interleave(g, 0)
    lengths = lengths.repeat_interleave(g)
    step_mask = torch.cat([mask.repeat_interleave(g, 0), torch.ones(b * g, t - 1, dtype=mask.dtype, device=device)], 1)
    step_pos = lengths[:, None] + torch.arange(t - 1, device=device)
    rest = model(input_ids=completions[:, :-1], attention_mask=step_mask, position_ids=step_pos, past_key_values=cache, use_cache=True)
    rest_lp = _token_logprobs(rest.logits, completions[:, 1:], temperature, None if allowed is None else allowed[:, 1:])
    return torch.cat([first[:, None], rest_lp], 1)

