"""Quickstart stages of the genrec family (appended to ``rl4rec quickstart``); generated data only."""

from __future__ import annotations

from pathlib import Path


def stage_baselines(runs_dir: Path) -> list[dict]:
    """Synthetic 50-item category with a known next-item rule: popularity vs SASRec, full ranking."""
    from rl4rec.config import apply_overrides
    from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline
    from rl4rec.genrec.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(Path(runs_dir) / "quickstart" / "data")
    rows = []
    for model, extra in (("pop", []), ("sasrec", ["epochs=15", "dropout=0.1"])):
        cfg = apply_overrides(
            BaselineConfig, {}, [f"model={model}", f"dataset={folder}", f"runs_dir={runs_dir}", "experiment=quickstart", "resume=true", *extra]
        )
        result = train_baseline(cfg) or {}
        rows.append(
            {
                "stage": "genrec",
                "what": f"{model} on a synthetic catalog (50 items, next = successor w.p. 0.9)",
                "metric": "test/hr@1",
                "value": result.get("test", {}).get("hr@1"),
            }
        )
    return rows


STAGES = [("genrec-baselines", stage_baselines)]
