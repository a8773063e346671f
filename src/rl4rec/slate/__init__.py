"""Slate recommendation with RL in the TopicRec user simulator (GeMS, WSDM 2023).

Importing this package registers the gymnasium environments ``rl4rec/TopicRec-<variant>-v0``
(cheap: no torch import). The main classes are imported lazily on first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

from rl4rec.slate.gym_env import register_envs

_EXPORTS = {
    "VARIANTS": "env.config",
    "TopicRecConfig": "env.config",
    "variant_config": "env.config",
    "generate_embeddings": "env.embeddings",
    "load_embeddings": "env.embeddings",
    "TopicRecSimulator": "env.simulator",
    "ReturnStats": "evaluate",
    "episode_returns": "evaluate",
    "evaluate_policy": "evaluate",
    "TopicRecEnv": "gym_env",
    "TopicRecVectorEnv": "gym_env",
    "env_id": "gym_env",
    "LoggedData": "logs",
    "generate_logs": "logs",
    "load_logs": "logs",
    "EpsGreedyOracle": "policies",
    "RandomPolicy": "policies",
    "ShortTermOracle": "policies",
    "make_policy": "policies",
}
__all__ = sorted(_EXPORTS) + ["register_envs"]

register_envs()


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
