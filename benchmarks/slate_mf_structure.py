"""How much of the simulator's item geometry an item table carries: the TopK(MF) diagnostic.

SAC+TopK(MF) scores items by ``<action, m_i>`` over an MF item table, so it can only aim at a topic
if the table separates topics. For each table, against the simulator's (true) item embeddings of its
environment family:

- ``nn_same_topic``: share of items whose nearest neighbour by cosine in the table has the same main
  topic (main topic = argmax of the per-topic L2 norm, as in the simulator); chance is the sum of
  squared topic shares (about 0.1 for 10 topics);
- ``linear_r2``: R^2 of the true embeddings regressed on the table (least squares with intercept):
  1 for the true table, about 20/1000 for a random one.

Rows: the released MF factors (data/slate/<env>.npy, the GeMS release), controls (the true table,
a Gaussian random table with the same seed every time), and any table given with ``--table``
(e.g. factors trained here by ``rl4rec slate pretrain --ranker mf``). Writes
benchmarks/results/slate_mf_structure.json.

    rl4rec slate pretrain --ranker mf --env focused_topdown pretrain.sessions=10000 experiment=mf_check
    python benchmarks/slate_mf_structure.py --data-dir ../shared/data \\
        --table "focused_topdown:MF trained here=runs/mf_check/<run>/mf_focused_topdown.npy" --made-by "rl4rec slate pretrain ..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("focused_topdown", "focused_mix", "focused_divpen", "diffuse_topdown", "diffuse_mix", "diffuse_divpen")


def main_topics(emb: np.ndarray, topics: int = 10) -> np.ndarray:
    return np.linalg.norm(emb.reshape(len(emb), topics, -1), axis=-1).argmax(1)


def structure(table: np.ndarray, true: np.ndarray) -> dict[str, float]:
    topic = main_topics(true)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    nn_same = float((topic[cos.argmax(1)] == topic).mean())
    x = np.hstack([table, np.ones((len(table), 1))])
    coef, *_ = np.linalg.lstsq(x, true, rcond=None)
    r2 = 1.0 - float(((x @ coef - true) ** 2).sum() / ((true - true.mean(0)) ** 2).sum())
    share = np.bincount(topic, minlength=10) / len(topic)
    return {"nn_same_topic": nn_same, "chance": float((share**2).sum()), "linear_r2": r2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--table", action="append", default=[], help="ENV:LABEL=PATH.npy, an extra item table of that environment")
    ap.add_argument("--made-by", action="append", default=[], help="the command that made a --table file (listed in the result)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "slate_mf_structure.json"))
    args = ap.parse_args()
    slate = Path(args.data_dir) / "slate"
    true = {fam: np.load(slate / f"item_embeddings_{fam}.npy").astype(np.float64) for fam in ("focused", "diffuse")}
    rows = []
    for fam, emb in true.items():
        rows.append({"env": f"{fam}_*", "table": "true item embeddings (TopK ideal)", **structure(emb, emb)})
        rand = np.random.default_rng(0).standard_normal(emb.shape)
        rows.append({"env": f"{fam}_*", "table": "Gaussian random (seed 0)", **structure(rand, emb)})
    for env in ENVS:
        rows.append({"env": env, "table": "released MF factors (GeMS release)", **structure(np.load(slate / f"{env}.npy").astype(np.float64),
                                                                                            true[env.split("_")[0]])})
    for spec in args.table:
        env, rest = spec.split(":", 1)
        label, path = rest.rsplit("=", 1)
        rows.append({"env": env, "table": label, "file": path,
                     **structure(np.load(path).astype(np.float64), true[env.split("_")[0]])})
    result = {
        "claim": "topic structure of item tables against the simulator's item embeddings (nearest-neighbour main-topic "
                 "agreement, linear R^2); a table without it cannot aim SAC+TopK at a topic",
        "commands": [*args.made_by, "python benchmarks/slate_mf_structure.py --data-dir ../shared/data"
                     + "".join(f' --table "{t}"' for t in args.table) + "".join(f' --made-by "{c}"' for c in args.made_by)],
        "rows": rows,
        "notes": ["chance: the nearest-neighbour agreement of a table unrelated to the topics (sum of squared topic shares)",
                  "linear_r2: least squares with intercept of the 20 true dimensions on the table's columns, over the 1,000 items"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['env']:<16} {r['table']:<60} NN same topic {r['nn_same_topic']:.3f} (chance {r['chance']:.3f})  R2 {r['linear_r2']:.3f}")


if __name__ == "__main__":
    main()
