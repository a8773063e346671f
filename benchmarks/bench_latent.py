"""Claim: the prompt-once passes of rl4rec's latent model cost about half of the release's two full
passes for an SFT step, and a noise-GRPO group of G latents costs far less than G full passes.

Same model and inputs, this process, ``torch.set_num_threads(1)``; median seconds over repeats:

- **SFT step** (forward + backward of the title cross-entropy, batch of B rows): rl4rec's prompt once
  with a KV cache + ``[z, title]`` on top (:meth:`LatentLM.answer_loss`), vs the release's two
  passes (pass 1 over prompt + thought + title only to read the prompt's hidden states, pass 2 over
  the whole sequence with the thought embedding replaced by ``z``).
- **GRPO group scoring** (rewards + loss of P prompts x G latents, gradient to the latent module
  only): rl4rec's one frozen prompt pass + G short continuations
  (:func:`rl4rec.genrec.latent.grpo.score_group`), vs the release's layout: G identical copies of
  each prompt through the two-pass forward (it ran this twice, for rewards and for the loss; we
  count it once).

Model: the ``small`` preset (d = 128, 4 layers) at CDs shapes (prompt ~112 tokens, title 12 tokens),
random weights (speed does not depend on training).

    python benchmarks/bench_latent.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "latent_speed.json"
V, PROMPT, TITLE, THOUGHT = 2048, 112, 12, 2047


def build(preset: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rl4rec.genrec.latent.model import LatentLM
    from rl4rec.genrec.latent.module import LatentAttention
    from rl4rec.genrec.model import PRESETS

    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=V, max_position_embeddings=512, **PRESETS[preset]))
    return LatentLM(lm, LatentAttention(PRESETS[preset]["hidden_size"]), 1, THOUGHT)


def two_pass_hidden(llm, prompt: torch.Tensor, title: torch.Tensor, z_noise: torch.Tensor | None = None) -> torch.Tensor:
    """The release's forward: pass 1 over the full sequence (for H), pass 2 with z in place of the
    thought token; returns the hidden states predicting the title tokens."""
    full = torch.cat([prompt, torch.full_like(prompt[:, :1], THOUGHT), title[:, :-1]], 1)
    t = prompt.shape[1]
    h = llm.backbone(input_ids=full).last_hidden_state
    z = llm.latent(h[:, :t], torch.ones_like(prompt))
    if z_noise is not None:
        z = z + z_noise
    emb = llm.embed(full)
    emb = torch.cat([emb[:, :t], z[:, None].to(emb.dtype), emb[:, t + 1 :]], 1)
    return llm.backbone(inputs_embeds=emb).last_hidden_state[:, t:]


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from rl4rec.genrec.latent.grpo import estimator_loss, group_rewards, score_group

    llm = build(args.preset)
    gen = torch.Generator().manual_seed(0)
    rows = []

    b = 16
    prompt = torch.randint(3, V - 1, (b, PROMPT), generator=gen)
    title = torch.randint(3, V - 1, (b, TITLE), generator=gen)
    mask, tmask = torch.ones_like(prompt), torch.ones_like(title, dtype=torch.bool)

    def sft_ours():
        llm.zero_grad()
        llm.answer_loss(prompt, mask, title, tmask).backward()

    def sft_release():
        llm.zero_grad()
        logits = llm.head(two_pass_hidden(llm, prompt, title)).float()
        torch.nn.functional.cross_entropy(logits.reshape(-1, V), title.reshape(-1)).backward()

    ours, base = timeit(sft_ours, args.repeats), timeit(sft_release, args.repeats)
    rows.append({"what": f"SFT step, batch {b}", "rl4rec_s": ours, "release_layout_s": base, "speedup": base / ours})

    p, g = 4, 8
    for param in llm.lm.parameters():
        param.requires_grad_(False)
    prompt, title = prompt[:p], title[:p]
    mask, tmf = torch.ones_like(prompt), torch.ones(p, TITLE)
    eps = torch.randn(p, g, llm.latent.hidden_size, generator=gen) * 1.5
    eps[:, 0] = 0
    adv = torch.randn(p, g, generator=gen)

    def grpo_ours():
        llm.zero_grad()
        logp, z, e = score_group(llm, prompt, mask, title, eps, with_grad=True)
        group_rewards(logp.detach(), tmf[:, None].expand_as(logp), "neg_ppl")
        estimator_loss("weighted_likelihood", logp, tmf, adv, z, e, torch.full((p,), 1.5), "neg_ppl").backward()

    def grpo_release():
        llm.zero_grad()
        rp, rt = prompt.repeat_interleave(g, 0), title.repeat_interleave(g, 0)
        h = two_pass_hidden(llm, rp, rt, eps.reshape(p * g, -1))
        logp = llm.head(h).float().log_softmax(-1).gather(-1, rt[..., None]).squeeze(-1).view(p, g, -1)
        (-(adv * logp.sum(-1)).sum() / (g * TITLE)).backward()

    ours, base = timeit(grpo_ours, args.repeats), timeit(grpo_release, args.repeats)
    rows.append({"what": f"noise-GRPO scoring, {p} prompts x {g} latents", "rl4rec_s": ours, "release_layout_s": base, "speedup": base / ours})

    out = {"claim": "prompt-once latent passes vs the release's two-pass layout", "command": "python benchmarks/bench_latent.py",
           "model": args.preset, "shapes": {"prompt": PROMPT, "title": TITLE, "vocab": V},
           "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "threads": 1}, "rows": rows}
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print("| step | rl4rec (s) | release layout (s) | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['rl4rec_s']:.3f} | {r['release_layout_s']:.3f} | {r['speedup']:.1f}× |")


if __name__ == "__main__":
    main()
