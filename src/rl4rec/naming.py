"""Run names built from what differs: ``sac-gems_focused-topdown_kl1.0_click0.5_seed58407201``.

Researchers in this field hand-edit dozens of log and tracker names per batch of runs; here the
name is a pure function of the config, so it is readable and stable across machines: the method
and dataset (``NAME_KEYS``), the batched seeds, at most :data:`MAX_KEYS` of the keys that differ
from the defaults, a short hash of the others, then the seed; never over :data:`MAX_LENGTH`
characters. The full difference is in ``config.yaml`` (``rl4rec runs show``).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
    *sections, name = dotted.split(".")
    for part in sections:
        cfg = getattr(cfg, part)
    return getattr(cfg, name), next(f for f in dataclasses.fields(cfg) if f.name == name)


def _token(key: str, value: Any, fld: dataclasses.Field) -> str:
    short = fld.metadata.get("short")
    if short is None:
        short = key.rsplit(".", 1)[-1].replace("_", "-")
    text = _fmt(value)
    if short and text[:1].isalpha():  # "click-model-mixPBM", but "kl1.0"
        return f"{short}-{text}"
    return f"{short}{text}"


MAX_KEYS = 3
MAX_LENGTH = 80


def run_name(cfg: Any) -> str:
    """The run name of ``cfg`` (see the module docstring)."""
    exclude = tuple(getattr(cfg, "NAME_EXCLUDE", ()))
    lead_keys = tuple(getattr(cfg, "NAME_KEYS", ()))
    lead = [_token(key, *_get(cfg, key)) for key in lead_keys]
    head = ["-".join(lead[:2]), *lead[2:]] if lead else []
    rest, seeds = [], []
    for key, value, fld in diff_from_defaults(cfg):
        if key in lead_keys or key.split(".", 1)[0] in exclude or key in exclude:
            continue
        if key == "seeds":  # batched seeds follow the method; more than two are counted, and hashed
            head.append(_token(key, value, fld) if len(value) <= 2 else f"{len(value)}seeds")
            seeds = [_token(key, value, fld)] if len(value) > 2 else []
        else:
            rest.append(_token(key, value, fld))
    shown, hidden = rest[:MAX_KEYS], [*seeds, *rest[MAX_KEYS:]]

    def compose() -> str:
        digest = [hashlib.sha1("_".join(hidden).encode()).hexdigest()[:6]] if hidden else []
        return "_".join(p for p in [*head, *shown, *digest, f"seed{cfg.seed}"] if p)

    while shown and len(compose()) > MAX_LENGTH:
        hidden.insert(0, shown.pop())
    name = compose()
    if len(name) > MAX_LENGTH:  # long dataset or path names: cut the head, the hash keeps it unique
        hidden = [*head, *hidden]
        tail = compose().split("_", len(head))[-1]
        name = "_".join(head)[: MAX_LENGTH - len(tail) - 1].rstrip("_-") + "_" + tail
    return name
