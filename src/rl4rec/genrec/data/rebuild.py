"""The honest train-set rebuild for releases without a train split (``shared/data/amazon/README.md``).

In a global time split, a user's rows are contiguous runs of train, then valid, then test rows.
So the history window ``h1..hn`` of a user's *first* valid row lies entirely before the
validation period, and each of ``h2..hn`` was the target of an original train row. Expanding
that window gives training samples that never use a valid or test target.

Recipes (joined with ``+``, recorded in every run):

- ``r1`` (default): for each valid user, the first valid row's window, expanded:
  ``target = hj, history = h1..h(j-1)`` for ``j = 2..n``.
  Industrial: 6,424 samples; CDs_and_Vinyl: 7,350.
- ``r2`` (transductive, with ``r1``): the same for the first *test* row of users with no valid
  row. It reads test *inputs*, never a test target. Industrial: +3,969 (10,393 in all).
- ``v90``: the earliest 90 % of the valid rows become training rows; the rest is the
  model-selection set. The cut is ``int(0.9 n)`` in file (time) order, moved back to the first row
  of its timestamp when the rows carry times, so equal times never straddle the cut
  (Industrial: 4,078 + 454 rows; CDs_and_Vinyl: 5,536 + 620, the README's 2018-01-26 cut).
- ``file``: the category's own ``<C>.train.csv`` (e.g. from :mod:`rl4rec.genrec.data.preprocess`);
  may be combined with ``v90``.

Never filter rebuilt samples with the test file, and never count statistics on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rl4rec.genrec.data.examples import SeqExample

__all__ = ["TrainRebuild", "parse_recipe", "rebuild_train", "expand_window", "first_row_per_user", "split_v90"]

_ORDER = ("file", "r1", "r2", "v90")


def parse_recipe(recipe: str) -> tuple[str, ...]:
    """``"R1+v90"`` -> ``("r1", "v90")``; validates the combination."""
    parts = [p.strip().lower() for p in recipe.split("+") if p.strip()]
    unknown = [p for p in parts if p not in _ORDER]
    if unknown or not parts:
        raise ValueError(f"unknown train recipe {recipe!r}: use parts of {', '.join(_ORDER)} joined by '+', e.g. r1, r1+r2, r1+v90, file")
    if len(set(parts)) != len(parts):
        raise ValueError(f"train recipe {recipe!r} repeats a part")
    if ("file" in parts) == ("r1" in parts):
        raise ValueError(f"train recipe {recipe!r} needs exactly one base: 'file' (the train CSV) or 'r1' (the rebuild)")
    if "r2" in parts and "r1" not in parts:
        raise ValueError(f"train recipe {recipe!r}: r2 extends r1 (use r1+r2)")
    return tuple(p for p in _ORDER if p in parts)


def first_row_per_user(rows: Sequence[SeqExample]) -> dict[str, SeqExample]:
    """Each user's first row in file (= target-time) order."""
    first: dict[str, SeqExample] = {}
    for ex in rows:
        first.setdefault(ex.user_id, ex)
    return first


def expand_window(ex: SeqExample, tag: str) -> list[SeqExample]:
    """``h1..hn`` -> samples ``(h1..h(j-1) -> hj)`` for ``j = 2..n``; times sliced in parallel."""
    h, ts = ex.history, ex.history_timestamps
    return [
        SeqExample(
            user_id=ex.user_id,
            history=h[: j - 1],
            target_item_id=h[j - 1],
            timestamp=ts[j - 1] if ts is not None else None,
            history_timestamps=ts[: j - 1] if ts is not None else None,
            source=f"{tag}:{ex.source}[:{j - 1}]",
        )
        for j in range(2, len(h) + 1)
    ]


def split_v90(valid: Sequence[SeqExample], fraction: float = 0.9) -> tuple[list[SeqExample], list[SeqExample]]:
    """(earliest ~90 % of valid rows, the rest) — see the module docstring for the cut rule."""
    cut = int(fraction * len(valid))
    if cut < len(valid) and all(e.timestamp is not None for e in valid):
        t = valid[cut].timestamp
        while cut > 0 and valid[cut - 1].timestamp == t:
            cut -= 1
    return list(valid[:cut]), list(valid[cut:])


@dataclass
class TrainRebuild:
    """Training rows and the model-selection rows that go with them."""

    recipe: str
    train: list[SeqExample]
    valid: list[SeqExample]
    counts: dict[str, int] = field(default_factory=dict)


def rebuild_train(
    valid: Sequence[SeqExample],
    test: Sequence[SeqExample] = (),
    *,
    recipe: str = "r1",
    train_file: Sequence[SeqExample] | None = None,
) -> TrainRebuild:
    """Build the training rows of ``recipe`` from the valid (and, for ``r2``, test) rows.

    Only history windows are read; a valid target is used for training only under ``v90`` (and
    then removed from the selection set); a test target never.
    """
    parts = parse_recipe(recipe)
    train: list[SeqExample] = []
    counts: dict[str, int] = {}
    if "file" in parts:
        if train_file is None:
            raise ValueError("recipe 'file' needs the train CSV rows (train_file=...)")
        train.extend(train_file)
        counts["file"] = len(train_file)
    if "r1" in parts:
        r1 = [s for ex in first_row_per_user(valid).values() for s in expand_window(ex, "r1")]
        train.extend(r1)
        counts["r1"] = len(r1)
    if "r2" in parts:
        valid_users = {ex.user_id for ex in valid}
        test_only = [ex for u, ex in first_row_per_user(test).items() if u not in valid_users]
        r2 = [s for ex in test_only for s in expand_window(ex, "r2")]
        train.extend(r2)
        counts["r2"] = len(r2)
    selection = list(valid)
    if "v90" in parts:
        early, selection = split_v90(valid)
        train.extend(replace(e, source=f"v90:{e.source}") for e in early)
        counts["v90"] = len(early)
    counts["train"] = len(train)
    counts["valid"] = len(selection)
    return TrainRebuild("+".join(parts), train, selection, counts)
