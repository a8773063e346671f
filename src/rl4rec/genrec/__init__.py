"""Generative recommendation: Amazon-style datasets, semantic IDs, baselines (and later SFT/GRPO).

Spec: ``shared/specs/genrec.md``. Subpackages: :mod:`rl4rec.genrec.data` (catalog, examples,
splits, preprocessing, synthetic data), :mod:`rl4rec.genrec.sid` (embeddings, RQ-KMeans, RQ-VAE,
collision handling), :mod:`rl4rec.genrec.baselines` (popularity, SASRec, GRU4Rec).
"""
