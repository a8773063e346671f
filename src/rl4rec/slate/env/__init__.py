"""TopicRec simulator: config and variants, item catalogues, click models, batched simulator.

Names are imported lazily (PEP 562) so that ``rl4rec --help`` and env registration do not pay
for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VARIANTS": "config",
    "TopicRecConfig": "config",
    "check_env_name": "config",
    "variant_config": "config",
    "examination": "click_models",
    "generate_embeddings": "embeddings",
    "load_embeddings": "embeddings",
    "resolve_catalogue": "embeddings",
    "POPULATIONS": "config",
    "TopicRecSimulator": "simulator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
