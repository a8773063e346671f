"""rl4rec inside Hugging Face TRL's ``GRPOTrainer``: rewards in TRL's calling convention, the item
trie as a generation constraint, and rl4rec datasets as ``datasets.Dataset``.

- :class:`SIDReward` and :class:`TextReward` are callables ``(prompts, completions, **columns) ->
  list[float]``. They compute nothing themselves: they turn TRL's completions into the
  :class:`~rl4rec.genrec.grpo.rewards.Rollouts` rl4rec's own trainer builds and call the same
  registered rewards (:func:`~rl4rec.genrec.grpo.rewards.combine_rewards`), so each reward has one
  implementation for both trainers.
- :func:`constrain_generation` makes every ``model.generate`` call trie-constrained (TRL's
  transformers path), so each sampled completion is a catalogue SID. TRL has no logits-processor
  option; its experimental ``rollout_func`` hook would also work, but the log-probs it returns feed
  TRL's importance-sampling correction against unconstrained log-probs, so a processor is used.
  For TRL's vLLM path, :func:`catalog_regex` gives ``vllm_structured_outputs_regex``.
- :func:`as_hf_dataset` renders any task of an SFT run's mixture as rows with the prompt text
  (rl4rec's RL-phase prompt, history cut to fit like rl4rec's) and the columns the rewards read.

The ``trl`` extra (``pip install 'rl4rec[trl]'``) brings TRL and ``datasets``; nothing else in
rl4rec imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from rl4rec.genrec.decoding import ItemTrie, TrieLogitsProcessor
from rl4rec.genrec.grpo.rewards import REWARDS, RewardContext, Rollouts, combine_rewards, ground_texts

__all__ = ["SIDReward", "TextReward", "constrain_generation", "completion_length", "catalog_regex", "as_hf_dataset"]


class _Reward:
    """What both rewards share: the weights, the context, TRL's ``__name__`` and metric logging."""

    def __init__(self, rewards: str | dict[str, float], context: RewardContext | None, name: str | None):
        self.weights = {rewards: 1.0} if isinstance(rewards, str) else dict(rewards)
        unknown = [n for n in self.weights if n not in REWARDS]
        if not self.weights or unknown:
            raise ValueError(f"unknown reward(s) {unknown or '(none given)'}; registered: {', '.join(sorted(REWARDS))}")
        self.context = context or RewardContext()
        self.__name__ = name or "rl4rec_" + "+".join(self.weights)  # TRL logs rewards/<__name__>/mean
        self.last_metrics: dict[str, float] = {}

    def _columns(self, prompts, target, row, history):
        """(target ids, group ids, positions inside the groups, histories) from TRL's arguments. A
        completion's group is the dataset row it answers (the ``row`` column, else the prompt
        text); positions follow the order TRL produced the completions in."""
        if target is None:
            raise ValueError(f"{type(self).__name__} needs the dataset column 'target' (the target item id); "
                             "build the dataset with as_hf_dataset")
        keys = list(row) if row is not None else [repr(p) for p in prompts]
        ids: dict[Any, int] = {}
        group = torch.as_tensor([ids.setdefault(k, len(ids)) for k in keys], dtype=torch.long)
        # position inside the group: how many earlier rows share it (vectorised: stable sort by group)
        order = torch.argsort(group, stable=True)
        starts = torch.searchsorted(group[order], torch.arange(len(ids)))
        within = torch.empty_like(group)
        within[order] = torch.arange(len(keys)) - starts[group[order]]
        hist = [list(h) for h in history] if history is not None else None
        return torch.as_tensor(list(target), dtype=torch.long), group, within, hist

    def _score(self, rollouts: Rollouts, log_metric=None) -> list[float]:
        total, metrics = combine_rewards(rollouts, self.weights, self.context)
        self.last_metrics = metrics
        if log_metric is not None:  # TRL >= 1.x passes a logger for extra scalars
            for key in ("train/invalid_rate", *[k for k in metrics if k.endswith("_mean")]):
                log_metric(f"{self.__name__}/{key.split('/', 1)[1]}", metrics[key])
        return total.tolist()


class SIDReward(_Reward):
    """The registered SID rewards (``rule``, ``ndcg_rule``, ``ranking``, ``prefix``, ``rank_hit``,
    ``semantic``, ``cf``, ...) as a TRL reward function.

    Completions are read from ``completion_ids`` (TRL passes them) through the trie: a completion is
    an item only if it is a whole catalogue SID followed by ``"\\n"`` and EOS; anything else is
    invalid and gets ``context.invalid_reward``. Under SID collisions a completion carrying the
    target's SID counts as the target, as in evaluation. The dataset columns ``target`` (item id),
    ``row`` (group id) and, for ``cf``, ``history`` arrive as keyword arguments.

    Rank-aware rewards (``ndcg_rule``, ``ranking``) rank a group by the order TRL produced its
    completions: TRL gives reward functions no log-probs, so with sampling that rank is arbitrary;
    rl4rec's trainer ranks beams (or samples by log-prob) instead.
    """

    def __init__(self, rewards: str | dict[str, float], trie: ItemTrie, context: RewardContext | None = None, *,
                 catalog=None, name: str | None = None):
        super().__init__(rewards, context, name)
        if getattr(trie, "item_sid", None) is None:
            raise ValueError("SIDReward needs a trie built by ItemTrie.from_catalog (it maps items to SIDs)")
        self.trie = trie
        if "prefix" in self.weights and self.context.item_codes is None:
            if catalog is None or catalog.sids is None:
                raise ValueError("the prefix reward needs the catalog's SID codes: SIDReward(..., catalog=run.dataset.catalog)")
            self.context.item_codes = torch.as_tensor(catalog.sids.codes, dtype=torch.long)

    def items(self, completion_ids: Sequence[Sequence[int]], targets: torch.Tensor) -> torch.Tensor:
        """Item id of every completion (the target on a SID hit, else the SID's lowest item; -1 if invalid)."""
        t = self.trie
        rows = [torch.as_tensor(list(c), dtype=torch.long) for c in completion_ids] or [torch.empty(0, dtype=torch.long)]
        ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=t.pad_id)[: len(completion_ids)]
        sid = t.sid_of(ids)  # an empty completion is invalid (sid_of handles width 0)
        item = torch.where(sid == t.item_sid[targets], targets, t.sid_first_item[sid.clamp(min=0)])
        return torch.where(sid >= 0, item, -1)

    def __call__(self, prompts, completions, completion_ids=None, target=None, row=None, history=None, log_metric=None, **_) -> list[float]:
        targets, group, within, hist = self._columns(prompts, target, row, history)
        if completion_ids is None:
            raise ValueError("SIDReward needs completion_ids (TRL's GRPOTrainer passes them)")
        return self._score(Rollouts(group, self.items(completion_ids, targets), within, targets, hist), log_metric)


class TextReward(_Reward):
    """The retrieval-grounded free-text rewards (``ndcg``, ``hit``, ``mrr``, ``mixed``) as a TRL
    reward function: each completion text is ranked against the catalogue by ``retrieval`` (a
    :class:`~rl4rec.genrec.retrieval.RetrievalIndex`, or the shared Ray actor's client from
    :func:`~rl4rec.genrec.retrieval.make_retrieval`), and the target's rank is the reward's input.
    An empty completion is invalid. Columns: ``target``, ``row``, and ``history`` when
    ``exclude_history`` drops the user's history from the ranking.
    """

    def __init__(self, rewards: str | dict[str, float], retrieval, context: RewardContext | None = None, *,
                 exclude_history: bool = False, name: str | None = None):
        super().__init__(rewards, context, name)
        self.retrieval, self.exclude_history = retrieval, exclude_history

    def __call__(self, prompts, completions, target=None, row=None, history=None, log_metric=None, **_) -> list[float]:
        targets, group, within, hist = self._columns(prompts, target, row, history)
        # TRL passes strings, or for chat datasets a list of messages
        texts = [(c if isinstance(c, str) else str(c[-1]["content"])).strip() for c in completions]
        ranks, items = ground_texts(self.retrieval, texts, targets, hist if self.exclude_history else None)
        return self._score(Rollouts(group, items, within, targets, hist, target_ranks=ranks), log_metric)


# --------------------------------------------------------------------------- generation constraint


def completion_length(trie: ItemTrie) -> int:
    """The ``max_completion_length`` a SID answer needs: the longest SID, ``"\\n"`` and EOS."""
    return trie.max_sid_len + len(trie.suffix_ids)


def constrain_generation(model, trie: ItemTrie, *, on_dead_end: str = "raise"):
    """Make every ``model.generate`` call allow only catalogue SIDs (then ``"\\n"`` and EOS).

    TRL's transformers path calls ``unwrapped_model.generate(input_ids=..., attention_mask=...,
    generation_config=...)`` with left-padded prompts, so the answer starts at
    ``input_ids.shape[1]``. This wraps the model's ``generate`` (an instance attribute, so it
    survives accelerate's unwrapping) to append a :class:`TrieLogitsProcessor` for that width.
    Call it before building the trainer; returns the model.
    """
    if getattr(model, "_rl4rec_trie", None) is not None:
        raise ValueError("this model's generate is already constrained")
    unconstrained = model.generate

    def generate(*args, **kwargs):
        from transformers import LogitsProcessorList

        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise ValueError("constrained generate needs input_ids")
        procs = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        procs.append(TrieLogitsProcessor(trie, ids.shape[1], on_dead_end=on_dead_end))
        return unconstrained(*args, logits_processor=procs, **kwargs)

    model.generate = generate
    model._rl4rec_trie = trie
    return model


def catalog_regex(catalog, *, suffix: str = "\n") -> str:
    """A regular expression matching exactly the catalogue's SID strings (then ``suffix``), nested
    by shared prefix so it stays linear in the catalogue size: TRL's
    ``vllm_structured_outputs_regex`` for its vLLM generation path. (Not exercised here: this
    machine has no vLLM; rl4rec's own ``genrec grpo`` constrains vLLM-free with the trie.)"""
    codec = getattr(catalog, "sids", catalog)
    tree: dict = {}
    for item in range(codec.num_items):
        node = tree
        for tok in codec.tokens(item):
            node = node.setdefault(tok, {})
        node[None] = {}  # end of a SID

    def alternation(node: dict) -> str:
        branches = ["" if tok is None else re.escape(tok) + alternation(child) for tok, child in sorted(node.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return alternation(tree) + re.escape(suffix)


# --------------------------------------------------------------------------- datasets


def as_hf_dataset(loaded, task: str = "seq_sid2sid", split: str = "train", *, reserve: int | None = None):
    """The rows of one task of an SFT run (:func:`~rl4rec.genrec.artifacts.load_sft_run`) as a
    ``datasets.Dataset`` with columns ``prompt`` (rl4rec's RL-phase prompt text, the history cut
    oldest-first to fit ``max_len - reserve`` tokens as rl4rec's trainer does), ``target`` (item id),
    ``target_sid``, ``history`` (item ids), ``row`` (the row index: the group key of the rewards) and
    ``task``. Sequential tasks use ``split``'s rows; item tasks (``title2sid``, ...) every item."""
    from datasets import Dataset

    from rl4rec.genrec.prompts import SEQ_TASKS, TASKS, prompt_ids

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be train, valid or test, got {split!r}")
    b, tok, cat = loaded.builder, loaded.tokenizer, loaded.dataset.catalog
    samples = b.seq_samples(task, getattr(loaded.dataset, split)) if task in SEQ_TASKS else b.item_samples(task)
    reserve = completion_length(loaded.trie) if reserve is None else reserve
    rows = []
    for i, s in enumerate(samples):
        _, dropped = prompt_ids(b, tok, s, max_len=loaded.cfg.max_len, reserve=reserve, phase="rl")
        hist = list(s.history[dropped:]) if s.history and dropped < len(s.history) else list(s.history[-1:])
        rows.append({"prompt": b.prompt_of(s, "rl", hist), "target": s.target_item_id, "target_sid": cat.sid(s.target_item_id),
                     "history": list(s.history), "row": i, "task": task})
    return Dataset.from_list(rows)
