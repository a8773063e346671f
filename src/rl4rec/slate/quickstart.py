"""Quickstart stages of the slate family: reference policies, SAC+TopK and SAC+GeMS at tiny scale.

They run on a catalogue generated here (the paper's recipe, un-peaked like the released files),
so the tour needs no shared data. Budgets are tiny: the point is the pipeline, not the numbers.
"""

from __future__ import annotations

from pathlib import Path

COMMON = ["experiment=quickstart", "resume=true", "val_users=50", "test_users=200", "threads=0"]


def _catalogue(runs_dir: Path) -> Path:
    from rl4rec.runs import atomic_save_npy
    from rl4rec.slate.env.embeddings import generate_embeddings

    path = runs_dir / "quickstart" / "slate_catalogue.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(path, generate_embeddings(1000, 10, 2, peak_power=None, seed=7).numpy())
    return path


def stage_slate(runs_dir: Path) -> list[dict]:
    from rl4rec.config import apply_overrides
    from rl4rec.slate.train import SlateTrainConfig, train_slate

    catalogue = _catalogue(runs_dir)
    base = [f"runs_dir={runs_dir}", f"embeddings={catalogue}", *COMMON]
    methods = [
        ("random policy", ["agent=random", "ranker=none"]),
        ("short-term oracle", ["agent=sto", "ranker=none"]),
        ("SAC+TopK(ideal), 2 seeds batched, 100 steps", ["agent=sac", "ranker=topk_ideal", "seeds=[1, 2]", "steps=100", "random_steps=20", "eval_every=50"]),
        (
            "SAC+GeMS (GeMS: 300 logged sessions, 1 epoch), 100 steps",
            ["agent=sac", "ranker=gems", "steps=100", "random_steps=20", "eval_every=50", "pretrain.sessions=300", "pretrain.epochs=1"],
        ),
    ]
    rows = []
    for what, overrides in methods:
        result = train_slate(apply_overrides(SlateTrainConfig, {}, [*base, *overrides]))
        rows.append({"stage": "slate", "what": what + " (generated catalogue, focused_topdown)", "metric": "test/return (200 users)", "value": result["test/return"]})
    return rows
