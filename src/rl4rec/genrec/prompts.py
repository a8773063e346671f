"""Prompt templates of the SFT / GRPO / evaluation tasks: ONE template per task (spec genrec.md §4).

Upstream renders the next-SID task three different ways (SFT with a preamble, RL without,
test with reworded input; spec §12.8), so training and test distributions differ. Here a task
renders the same way in every phase unless ``prompt.style=minionerec_compat`` asks for the
upstream trio. Prompts are rendered from item *ids* through the catalog; samples carry their
target id, so nothing is ever looked up by prompt string (spec §12.3, §13.2).

Shapes (spec §4): with ``preamble`` (P) ::

    Below is an instruction ... completes the request. \\n\\n### Instruction:\\n{instruction}\\n\\n
    ### User Input: \\n{input}\\n\\n### Response:\\n

without (Q): only the ``### User Input`` part. The answer is ``{sid or title}\\n`` then EOS.

    builder = PromptBuilder(catalog, PromptConfig(), dataset="Industrial_and_Scientific")
    ids, dropped = prompt_ids(builder, tok, "seq_sid2sid", history=(3, 17), max_len=256)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rl4rec.config import field
from rl4rec.genrec.data.catalog import ItemCatalog

__all__ = [
    "TASKS",
    "SID_TASKS",
    "SEQ_TASKS",
    "PromptConfig",
    "PromptBuilder",
    "Sample",
    "encode_prompt",
    "encode_answer",
    "prompt_ids",
    "category_name",
]

TASKS = ("seq_sid2sid", "title2sid", "sid2title", "seq_title2sid", "seq_sid2title", "desc2sid", "seq_title2title")
#: tasks whose answer is a SID (constrained decoding applies; GRPO rewards them)
SID_TASKS = ("seq_sid2sid", "title2sid", "seq_title2sid", "desc2sid")
#: tasks built from (history, target) rows; the others are built from catalog items
SEQ_TASKS = ("seq_sid2sid", "seq_title2sid", "seq_sid2title", "seq_title2title")
Phase = Literal["sft", "rl", "test"]

PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
_CATEGORIES = {
    "Industrial_and_Scientific": "industrial and scientific items",
    "Office_Products": "office products",
    "Toys_and_Games": "toys and games",
    "Sports": "sports and outdoors",
    "Books": "books",
    "CDs_and_Vinyl": "CDs and vinyl records",
}
_ID = "Answer the question about item identification."
_NEXT = "Can you predict the next possible item that the user may expect?"
#: task -> (instruction, input); {sids}/{titles} are histories, {sid}/{title}/{description} one item.
#: Histories come last in the input, so the newest item sits at a fixed distance before the answer
#: (upstream's offline-test wording of seq_sid2sid): a small model trained from scratch learns to
#: find it by relative position, where the SFT wording (history mid-sentence) left it at chance.
TEMPLATES: dict[str, tuple[str, str]] = {
    "seq_sid2sid": (_NEXT, "Can you predict the next possible item the user may expect, given the following chronological interaction history: {sids}"),
    "title2sid": (_ID, "Which item has the title: {title}?"),
    "sid2title": (_ID, 'What is the title of item "{sid}"?'),
    "seq_title2sid": (
        "Based on the user's historical interaction with item titles, predict the semantic ID of the next item they may expect.",
        "Can you predict the next item the user may expect, given the {cat} they interacted with in chronological order: {titles}",
    ),
    "seq_sid2title": (
        "Can you recommend the next item for the user based on their interaction history?",
        "Tell me the title of the next item the user may expect, given the following chronological interaction history: {sids}",
    ),
    "desc2sid": (_ID, 'An item can be described as follows: "{description}". Which item is it describing?'),
    # free text only (no SIDs in prompt or answer): the retrieval-grounded recommender of spec §10
    "seq_title2title": (
        "Based on the titles of the items a user interacted with, write the title of the next item they may expect.",
        "Write the title of the next item the user may expect, given the {cat} they interacted with in chronological order: {titles}",
    ),
}
_SFT_SEQ = "The user has interacted with items {sids} in chronological order. " + _NEXT
#: upstream's deviations (prompt.style=minionerec_compat): (task, phase) -> (shape, input)
_COMPAT: dict[tuple[str, str], tuple[str, str]] = {
    ("seq_sid2sid", "sft"): ("P", _SFT_SEQ),
    ("seq_sid2sid", "rl"): ("Q", _SFT_SEQ),
    ("seq_sid2sid", "test"): ("P", TEMPLATES["seq_sid2sid"][1]),
    ("title2sid", "rl"): ("Q", TEMPLATES["title2sid"][1]),
    ("desc2sid", "rl"): ("Q", TEMPLATES["desc2sid"][1]),
    ("seq_title2sid", "sft"): (
        "P",
        "The user has interacted with the following {cat} items in chronological order: {titles}. Can you predict the next item the user may expect?",
    ),
    ("seq_title2sid", "rl"): (
        "Q",
        "Given the title sequence of user historical interactive items: {titles}, can you recommend a suitable next item for the user?",
    ),
    ("seq_sid2title", "sft"): (
        "P",
        "The user has sequentially interacted with items {sids}. Can you recommend the next item for him? Tell me the title of the item",
    ),
}


def category_name(dataset: str) -> str:
    """Human name of a category for ``{cat}`` (spec §4), e.g. ``industrial and scientific items``."""
    return _CATEGORIES.get(dataset, dataset.replace("_", " ").lower() + " items" if dataset else "items")


@dataclass(frozen=True)
class PromptConfig:
    """How prompts look; stored with every model so SFT, GRPO and evaluation agree."""

    style: Literal["rl4rec", "minionerec_compat"] = field(
        "rl4rec", "rl4rec: one template per task in every phase; minionerec_compat: upstream's SFT/RL/test variants"
    )
    preamble: bool = field(True, "rl4rec style: Alpaca preamble + instruction (shape P) or the user input only (shape Q)")
    category: str = field("", "human category name for {cat} (empty: from the dataset name)")
    description_words: int = field(64, "desc2sid: descriptions are cut to this many words", ge=1)


@dataclass(frozen=True)
class Sample:
    """One training/evaluation sample. The target travels with it (never looked up by text)."""

    task: str
    target_item_id: int
    history: tuple[int, ...] = ()
    user_id: str = ""
    source: str = ""


class PromptBuilder:
    """Renders task prompts and answers from item ids through the catalog."""

    def __init__(self, catalog: ItemCatalog, cfg: PromptConfig = PromptConfig(), dataset: str = ""):
        if catalog.sids is None:
            raise ValueError(f"catalog {catalog.name!r} has no SIDs; build them with `rl4rec genrec build-sids`")
        self.catalog = catalog
        self.cfg = cfg
        self.cat = cfg.category or category_name(dataset or catalog.name)

    def render(self, task: str, history: Sequence[int] = (), item: int | None = None, phase: Phase = "sft") -> str:
        """The prompt text of ``task`` (ends with ``### Response:\\n``)."""
        if task not in TEMPLATES:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
        instruction, text = TEMPLATES[task]
        shape = "P" if self.cfg.preamble else "Q"
        if self.cfg.style == "minionerec_compat":  # upstream's variants, shape P where it has none
            shape, text = _COMPAT.get((task, phase), ("P", text))
        if task in SEQ_TASKS and not history:
            raise ValueError(f"task {task} needs a non-empty history")
        if task not in SEQ_TASKS and item is None:
            raise ValueError(f"task {task} needs an item")
        c = self.catalog
        values = {"cat": self.cat}
        if task in SEQ_TASKS:
            values["sids"] = ", ".join(c.sid(i) for i in history)
            values["titles"] = ", ".join(f'"{c.title(i)}"' for i in history)
        else:
            values.update(sid=c.sid(item), title=c.title(item), description=self._description(item))
        body = "### User Input: \n" + text.format(**values) + "\n\n### Response:\n"
        if shape == "Q":
            return body
        return PREAMBLE + " \n\n### Instruction:\n" + instruction + "\n\n" + body

    def answer(self, task: str, item: int) -> str:
        """The answer text (without the ``\\n`` + EOS that :func:`encode_answer` appends)."""
        return self.catalog.sid(item) if task in SID_TASKS else self.catalog.title(item)

    def prompt_of(self, sample: Sample, phase: Phase = "sft", history: Sequence[int] | None = None) -> str:
        hist = sample.history if history is None else history
        return self.render(sample.task, hist, None if sample.task in SEQ_TASKS else sample.target_item_id, phase)

    def _description(self, item: int) -> str:
        words = self.catalog.description(item).split()
        return " ".join(words[: self.cfg.description_words]) if words else "none"

    # -- samples -------------------------------------------------------------------------------
    @staticmethod
    def seq_samples(task: str, examples) -> list[Sample]:
        """One sample per (history, target) row."""
        return [Sample(task, e.target_item_id, tuple(e.history), e.user_id, e.source) for e in examples]

    def item_samples(self, task: str) -> list[Sample]:
        """One sample per catalog item (title/SID/description alignment tasks). Duplicate titles or
        shared SIDs give several samples with the same prompt and different targets; they are kept
        (each carries its own target) rather than overwritten as upstream's string maps do."""
        return [Sample(task, i, (), "", f"item:{i}") for i in range(len(self.catalog))]


# --------------------------------------------------------------------------- token ids


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Prompt ids: the text without special tokens, after BOS when the tokenizer has a distinct one
    (Llama-style); Qwen-style and our own tokenizers have none."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and bos != tokenizer.eos_token_id:
        ids = [bos, *ids]
    return ids


def encode_answer(tokenizer, answer: str) -> list[int]:
    """Answer ids: ``answer + "\\n"`` then EOS (spec §4), tokenized apart from the prompt."""
    return tokenizer(answer + "\n", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def prompt_ids(
    builder: PromptBuilder,
    tokenizer,
    sample: Sample,
    *,
    max_len: int,
    reserve: int = 0,
    phase: Phase = "sft",
) -> tuple[list[int], int]:
    """Prompt ids of ``sample`` that fit ``max_len - reserve`` tokens, and how many history items
    were dropped to fit (oldest first; spec §5 rl4rec). A prompt that still does not fit with one
    history item is cut from the left, and counted as ``len(history)``."""
    budget = max_len - reserve
    hist = list(sample.history)
    while True:
        ids = encode_prompt(tokenizer, builder.prompt_of(sample, phase, hist))
        if len(ids) <= budget:
            return ids, len(sample.history) - len(hist)
        if len(hist) <= 1:
            if budget < 8:
                raise ValueError(f"max_len {max_len} leaves no room for a prompt (answer needs {reserve})")
            return ids[-budget:], len(sample.history)
        hist = hist[1:]
