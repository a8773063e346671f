"""The LatentR³ prompt (spec latent_reasoning.md §1.6), rendered from item ids.

Faithful mode keeps the release's text, typos included ("recetenly", "palyed", "may bought",
``{c}s``): the results it is compared with were produced with it. ``template=clean`` fixes the
wording. The instruction block and the user block are tokenised apart and concatenated, as the
release does; the answer is ``"<title>"\\n`` + EOS, tokenised on its own (so the title trie and the
training targets are the same token sequences). The thought token is *not* part of the prompt ids:
the model appends the latent vector(s) in its place (:mod:`rl4rec.genrec.latent.model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rl4rec.config import field
from rl4rec.genrec.prompts import PREAMBLE

__all__ = ["LatentPromptConfig", "THOUGHT_TOKEN", "CATEGORY_WORDS", "category_word", "render_blocks", "encode_prompt", "encode_target", "fixed_texts"]

THOUGHT_TOKEN = "<|Thought|>"
#: the release's category words ({c})
CATEGORY_WORDS = {
    "CDs_and_Vinyl": "musics",
    "Video_Games": "video games",
    "Toys_and_Games": "toys and games",
    "Office_Products": "office products",
    "Books": "books",
    "Industrial_and_Scientific": "industrial and scientific items",
}
_TEMPLATES = {
    "faithful": (
        "Given a list of {c} the user recetenly enjoy, please write a new {c} that the user may bought",
        "The user has palyed the following {c}s before: {titles}",
    ),
    "clean": (
        "Given a list of {c} the user recently enjoyed, please write a new {c} that the user may buy",
        "The user has bought the following {c} before: {titles}",
    ),
}


@dataclass(frozen=True)
class LatentPromptConfig:
    """The prompt of spec §1.6."""

    template: Literal["faithful", "clean"] = field("faithful", "faithful: the release's wording with its typos; clean: corrected wording")
    category: str = field("", "the category word {c} (empty: from the dataset, e.g. CDs_and_Vinyl -> musics)")


def category_word(dataset: str, override: str = "") -> str:
    return override or CATEGORY_WORDS.get(dataset, dataset.replace("_", " ").lower())


def render_blocks(titles: Sequence[str], c: str, template: str = "faithful") -> tuple[str, str]:
    """(instruction block, user block) of one prompt; titles oldest first."""
    instruction, user = _TEMPLATES[template]
    joined = ", ".join(f'"{t}"' for t in titles)
    return (
        PREAMBLE + " \n\n### Instruction:\n" + instruction.format(c=c) + "\n",
        "### User Input: \n" + user.format(c=c, titles=joined) + "\n\n### Response: \n",
    )


def encode_prompt(tokenizer, titles: Sequence[str], c: str, template: str = "faithful", max_len: int = 512) -> list[int]:
    """Prompt ids (no BOS, no thought token), the two blocks tokenised apart; left-truncated to
    ``max_len`` tokens (the release's ``cutoff_len``; no CDs prompt comes near 512)."""
    a, b = render_blocks(titles, c, template)
    ids = tokenizer(a, add_special_tokens=False)["input_ids"] + tokenizer(b, add_special_tokens=False)["input_ids"]
    return ids[-max_len:]


def encode_target(tokenizer, title: str) -> list[int]:
    """``"<title>"\\n`` + EOS: the supervised tokens and one path of the title trie."""
    return tokenizer(f'"{title}"\n', add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def fixed_texts(c: str) -> list[str]:
    """The prompts' fixed text (for a from-scratch BPE, so its words become tokens)."""
    return [x for t in _TEMPLATES for x in render_blocks(["x"], c, t)]
