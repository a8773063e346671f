"""Free-text generation for the retrieval-grounded recommender (spec genrec.md §10): one interface,
two backends, and the grounded evaluation.

- ``HFGenerator``: ``transformers`` ``generate`` (CPU or GPU), left-padded batches, seeded sampling
  in a forked RNG (so a step's samples depend only on its seed, and resume replays them).
- ``VLLMGenerator``: vLLM where it is installed and a CUDA GPU is present (``pip install vllm``;
  never needed on the CPU path). The policy's weights reach vLLM through a saved folder that is
  reloaded every ``sync_every`` updates (public vLLM API only; see the class).

A completion is the generated ids up to and including the first EOS (``mask``), and its decoded
text. Grounding: the retrieval index embeds the text and ranks the whole catalog by cosine
similarity; the target's rank gives HR/NDCG/MRR@K, the same metrics as the SID models.

    gen = HFGenerator(model, tokenizer, max_new_tokens=32)
    out = gen.generate(prompt_id_lists, num_return=4, do_sample=True, seed=7)    # out.tokens, out.mask, out.texts
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Generated", "HFGenerator", "VLLMGenerator", "make_generator", "text_ranks", "text_metrics"]


@dataclass
class Generated:
    """``num_return`` completions per prompt, flattened (rows of a prompt are consecutive)."""

    tokens: torch.Tensor  # (M, T) generated ids, pad after EOS
    mask: torch.Tensor  # (M, T) bool, True up to and including EOS
    texts: list[str]


def _generated(tokenizer, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> Generated:
    """Completions up to and including the first EOS (everything when there is none: truncated) and
    within ``lengths``, pad elsewhere, and their decoded texts."""
    is_eos = tokens == tokenizer.eos_token_id
    mask = torch.cumsum(is_eos.int(), 1) - is_eos.int() == 0  # no EOS strictly before this position
    if lengths is not None:
        mask &= torch.arange(tokens.shape[1]) < lengths[:, None]
    tokens = tokens.masked_fill(~mask, tokenizer.pad_token_id)
    return Generated(tokens, mask, [t.strip() for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)])


class HFGenerator:
    """Sampling or greedy decoding with HF ``generate``."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 32, temperature: float = 1.0):
        self.model, self.tok = model, tokenizer
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def sync(self, model) -> None:  # the policy itself is used: nothing to copy
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], *, num_return: int = 1, do_sample: bool = True, seed: int = 0) -> Generated:
        from rl4rec.genrec.decoding import left_pad

        device = next(self.model.parameters()).device
        ids, mask = left_pad(prompts, self.tok.pad_token_id, device)
        was_training = self.model.training
        self.model.eval()
        devices = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, do_sample=do_sample, num_return_sequences=num_return,
                    max_new_tokens=self.max_new_tokens, temperature=self.temperature if do_sample else None,
                    top_k=0 if do_sample else None, top_p=1.0 if do_sample else None,
                    pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
                )
        finally:
            self.model.train(was_training)
        tokens = out[:, ids.shape[1] :]
        if tokens.shape[1] == 0:
            raise RuntimeError("generate returned no new tokens")
        return _generated(self.tok, tokens)


class VLLMGenerator:
    """vLLM sampling (GPU only). vLLM owns its own copy of the weights: ``sync(model)`` saves the
    policy to a folder and rebuilds the engine from it every ``sync_every`` calls, through vLLM's
    public ``LLM`` API (engine-internal weight loading is private and changes between releases)."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 32, temperature: float = 1.0, sync_every: int = 1, gpu_memory_utilization: float = 0.3):
        try:
            import vllm  # noqa: F401
        except ModuleNotFoundError as err:
            raise RuntimeError("generation.backend=vllm needs vLLM (pip install vllm) and a CUDA GPU; use backend=hf on CPU") from err
        if not torch.cuda.is_available():
            raise RuntimeError("generation.backend=vllm needs a CUDA GPU; use backend=hf on CPU")
        self.tok, self.max_new_tokens, self.temperature = tokenizer, max_new_tokens, temperature
        self.sync_every, self.mem = sync_every, gpu_memory_utilization
        self._dir = tempfile.mkdtemp(prefix="rl4rec-vllm-")
        self._calls, self.llm = 0, None
        self.sync(model)

    def sync(self, model) -> None:
        from vllm import LLM

        self._calls += 1
        if self.llm is not None and (self._calls - 1) % self.sync_every:
            return
        model.save_pretrained(self._dir)
        self.tok.save_pretrained(self._dir)
        self.release()  # the old engine's GPU memory goes before the new engine claims its share
        self.llm = LLM(model=self._dir, gpu_memory_utilization=self.mem, enforce_eager=True)

    def release(self) -> None:
        """Drop the engine and give its GPU memory back (vLLM frees it when the object is collected)."""
        if self.llm is None:
            return
        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(self, prompts: Sequence[Sequence[int]], *, num_return: int = 1, do_sample: bool = True, seed: int = 0) -> Generated:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(n=num_return, temperature=self.temperature if do_sample else 0.0, max_tokens=self.max_new_tokens, seed=seed)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        seqs = [list(c.token_ids) for o in outs for c in o.outputs]
        width = max(1, max(len(s) for s in seqs))
        tokens = torch.full((len(seqs), width), self.tok.pad_token_id, dtype=torch.long)
        for r, s in enumerate(seqs):
            tokens[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        return _generated(self.tok, tokens, torch.as_tensor([len(s) for s in seqs]))


def make_generator(backend: str, model, tokenizer, **kw):
    """``hf`` or ``vllm`` (see the classes)."""
    if backend == "hf":
        kw.pop("sync_every", None)
        return HFGenerator(model, tokenizer, **kw)
    if backend == "vllm":
        return VLLMGenerator(model, tokenizer, **kw)
    raise ValueError(f"unknown generation backend {backend!r}; choose hf or vllm")


def text_ranks(generator, index, prompts: Sequence[Sequence[int]], targets: Sequence[int], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Greedy text per prompt, grounded: the 0-based rank of the target among all catalog items."""
    from rl4rec.progress import track

    ranks = []
    for start in track(range(0, len(prompts), batch_size), desc="generate + ground", enabled=progress, unit="batch"):
        out = generator.generate(prompts[start : start + batch_size], num_return=1, do_sample=False)
        ranks.append(np.asarray(index.rank_texts(out.texts, list(targets[start : start + batch_size]))))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def text_metrics(generator, index, builder, tokenizer, examples, *, ks: Sequence[int], max_len: int, batch_size: int = 64, prefix: str = "valid/", progress: bool = False) -> dict[str, float]:
    """HR/NDCG/MRR@K of the grounded greedy generations for ``examples`` (``seq_title2title``)."""
    from rl4rec.genrec.prompts import PromptBuilder, prompt_ids
    from rl4rec.metrics.ranking import ranking_metrics

    samples = PromptBuilder.seq_samples("seq_title2title", examples)
    prompts = [prompt_ids(builder, tokenizer, s, max_len=max_len, reserve=generator.max_new_tokens)[0] for s in samples]
    ranks = text_ranks(generator, index, prompts, [e.target_item_id for e in examples], batch_size=batch_size, progress=progress)
    out = {f"{prefix}{k}": float(v) for k, v in ranking_metrics(ranks, ks, num_candidates=index.num_items).items()}
    out[f"{prefix}rows"] = len(examples)
    return out
