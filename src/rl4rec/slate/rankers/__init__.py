"""Action-to-slate maps: GeMS (slate VAE), TopK (ideal or MF embeddings); SoftMax lives in the REINFORCE agent."""

from rl4rec.slate.rankers.gems import GeMS, GeMSConfig
from rl4rec.slate.rankers.topk import TopK

__all__ = ["GeMS", "GeMSConfig", "TopK"]
