"""rl4rec: train recommenders with reinforcement learning.

Two families share configs, runs, metrics and reports: generative recommenders tuned with RL
(:mod:`rl4rec.genrec`) and slate recommendation in a user simulator (:mod:`rl4rec.slate`).
"""

__version__ = "0.1.0"
