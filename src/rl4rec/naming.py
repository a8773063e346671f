"""Run names built from what differs: ``sac-gems_focused-topdown_kl1.0_click0.5_seed58407201``.

Researchers in this field hand-edit dozens of log and tracker names per batch of runs; here the
name is a pure function of the config, so it is readable, complete and stable across machines.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from rl4rec.config import diff_from_defaults

_SAFE = re.compile(r"[^A-Za-z0-9.+=-]+")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        text = f"{value:g}"
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value) or "none"
    text = str(value)
    if "/" in text:  # paths: keep the file stem, the full path is in config.yaml
        text = text.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return _SAFE.sub("-", text.replace("_", "-")).strip("-") or "none"


def _get(cfg: Any, dotted: str) -> tuple[Any, dataclasses.Field]:
    obj, fld = cfg, None
    for part in dotted.split("."):
        fld = next(f for f in dataclasses.fields(obj) if f.name == part)
        obj = getattr(obj, part)
    assert fld is not None
    return obj, fld


def _token(key: str, value: Any, fld: dataclasses.Field) -> str:
    short = fld.metadata.get("short")
    if short is None:
        short = key.rsplit(".", 1)[-1].replace("_", "-")
    text = _fmt(value)
    if short and text[:1].isalpha():  # "click-model-mixPBM", but "kl1.0"
        return f"{short}-{text}"
    return f"{short}{text}"


def run_name(cfg: Any) -> str:
    """The run name of ``cfg``: its ``NAME_KEYS`` values, then every differing field, then the seed."""
    exclude = tuple(getattr(cfg, "NAME_EXCLUDE", ()))
    lead_keys = tuple(getattr(cfg, "NAME_KEYS", ()))
    lead = []
    for key in lead_keys:
        value, fld = _get(cfg, key)
        lead.append(_token(key, value, fld))
    rest = []
    for key, value, fld in diff_from_defaults(cfg):
        top = key.split(".", 1)[0]
        if key in lead_keys or top in exclude or key in exclude:
            continue
        rest.append(_token(key, value, fld))
    parts = []
    if lead:
        parts.append("-".join(lead[:2]))
        parts.extend(lead[2:])
    parts.extend(rest)
    parts.append(f"seed{cfg.seed}")
    name = "_".join(p for p in parts if p)
    if len(name) > 200:  # file-system limits; keep it stable with a hash of the full name
        import hashlib

        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:180]}_{digest}_seed{cfg.seed}"
    return name
