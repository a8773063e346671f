"""Classic sequential baselines scored over all items: popularity, SASRec, GRU4Rec.

SASRec doubles as the CF reward model of GRPO:

    from rl4rec.genrec.baselines import load_model
    sasrec = load_model("runs/genrec-baselines/sasrec-Industrial-and-Scientific_seed0")
    sasrec.score([[12, 7, 3], [5]], [[40, 41], [2, 9]])   # (2, 2) scores
"""

from rl4rec.genrec.baselines.models import MODELS, GRU4Rec, Popularity, SASRec, SequentialRecommender, load_model

__all__ = ["MODELS", "GRU4Rec", "Popularity", "SASRec", "SequentialRecommender", "load_model"]
