"""Typed configs: dataclasses with a docstring on every field, loaded from YAML + dotted overrides.

Every config in rl4rec is a frozen dataclass whose fields are declared with :func:`field`, which
records a help text and optional bounds/choices. The same object drives the CLI, YAML files,
sweeps and the Python API:

    cfg = load_config(SlateTrainConfig, "configs/x.yaml", ["env.click_model=mixPBM", "seed=3"])

Validation happens at construction: an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` naming the key and, for typos, the nearest valid keys. A typo never falls
back to a default silently.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "field",
    "validate",
    "from_dict",
    "to_dict",
    "apply_overrides",
    "load_config",
    "config_from_args",
    "parse_override",
    "diff_from_defaults",
    "describe",
    "replace",
]

C = TypeVar("C")
_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A config key, type or value is invalid; the message names the key and what would be valid."""


def field(
    default: Any = _MISSING,
    help: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    short: str | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """Declare a config field.

    Args:
        default: default value (immutable values only; use ``default_factory`` for lists).
        help: one-line description shown by ``rl4rec config`` and in the configuration reference.
        ge: numeric lower bound (inclusive) checked at construction; ``gt``, ``le`` and ``lt`` likewise.
        short: abbreviation used in run names (``""`` puts only the value in the name,
            ``None`` uses the field name).
    """
    if not help:
        raise TypeError("every config field needs a help text")
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "short": short}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --------------------------------------------------------------------------- type checking


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


#: the values each scalar type accepts (a bool is never a number) and what an error says was expected
_SCALARS = {bool: ((bool,), "true/false"), int: ((int,), "an integer"), float: ((int, float), "a number"),
            str: ((str, int, float), "a string"), Path: ((str, Path), "a path")}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; allow only lossless coercions (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if isinstance(value, bool) and value not in allowed:
            # YAML 1.1 reads a bare no/off/yes/on as a boolean: take the choice that was written
            spelled = [a for a in allowed if str(a).lower() in (("no", "off", "false") if not value else ("yes", "on", "true"))]
            if len(spelled) == 1:
                return spelled[0]
        if value in allowed:
            return value
        near = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ConfigError(
            f"{key}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}{hint}"
        )
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            with contextlib.suppress(ConfigError):
                return _coerce(value, arg, key)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return from_dict(tp, value, prefix=key + ".")
        raise ConfigError(f"{key}: expected a mapping for section {tp.__name__}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(tp)}), got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp in _SCALARS:
        accepted, what = _SCALARS[tp]
        if isinstance(value, accepted) and (tp is bool or not isinstance(value, bool)):
            # a number for a string: e.g. experiment=2024 from the command line; floats (a numpy float too) and
            # paths are always rebuilt
            return value if isinstance(value, tp) and tp not in (float, Path) else tp(value)
        raise ConfigError(f"{key}: expected {what}, got {value!r}")
    if isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


_BOUNDS = (("ge", operator.ge, ">="), ("gt", operator.gt, ">"), ("le", operator.le, "<="), ("lt", operator.lt, "<"))


def _unknown_key(cls: type, key: str, prefix: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    near = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(prefix + n for n in near)}?" if near else ""
    return ConfigError(
        f"unknown config key {prefix + key!r} in {cls.__name__}{hint} "
        f"(valid keys: {', '.join(prefix + n for n in names)})"
    )


def validate(cfg: Any, prefix: str = "") -> None:
    """Check every field of ``cfg`` (types and bounds), recursing into nested sections."""
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        key = prefix + f.name
        value = getattr(cfg, f.name)
        coerced = _coerce(value, hints[f.name], key)
        if coerced is not value:
            object.__setattr__(cfg, f.name, coerced)
        numeric = isinstance(coerced, (int, float)) and not isinstance(coerced, bool)
        for name, ok, sym in _BOUNDS:
            bound = f.metadata.get(name)
            if numeric and bound is not None and not ok(coerced, bound):
                raise ConfigError(f"{key}: {coerced!r} is out of range (must be {sym} {bound})")
        if dataclasses.is_dataclass(coerced):
            validate(coerced, prefix=key + ".")
    post = getattr(cfg, "check", None)
    if callable(post):
        post()


def from_dict(cls: type[C], data: typing.Mapping[str, Any] | None, prefix: str = "") -> C:
    """Build ``cls`` from a (nested) mapping; unknown keys, wrong types and bad values raise."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if not isinstance(key, str):  # YAML allows `? ` (null), numbers and lists as keys
            raise ConfigError(f"config key {prefix}{key!r} in {cls.__name__} is not a name")
        if key not in known:
            raise _unknown_key(cls, key, prefix)
    hints = get_type_hints(cls)
    obj = cls(**{name: _coerce(value, hints[name], prefix + name) for name, value in data.items()})  # _coerce builds sections
    validate(obj, prefix)
    return obj


def to_dict(v: Any) -> Any:
    """A config as a plain nested dict, suitable for YAML/JSON; likewise any config value as YAML/JSON
    holds it: sections as dicts, tuples as lists, paths as strings."""
    if dataclasses.is_dataclass(v):
        return {f.name: to_dict(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
        return [to_dict(x) for x in v]
    if isinstance(v, dict):
        return {k: to_dict(x) for k, x in v.items()}
    if isinstance(v, Path):
        return str(v)
    return v


_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)")


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``; the value is parsed as YAML (so ``true``, ``1e-3``, ``[1,2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. seed=3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return key, value


def _set_dotted(data: dict[str, Any], cls: type, key: str, value: Any) -> None:
    parts = key.split(".")
    node, node_cls, prefix = data, cls, ""
    for i, part in enumerate(parts):
        if part not in {f.name for f in dataclasses.fields(node_cls)}:
            raise _unknown_key(node_cls, part, prefix)
        if i == len(parts) - 1:
            node[part] = value
            return
        node_cls = get_type_hints(node_cls)[part]
        node = node.setdefault(part, {}) if dataclasses.is_dataclass(node_cls) else None
        if not isinstance(node, dict):  # a plain key, or a section given as a value
            raise ConfigError(f"{prefix + part} is not a section; cannot set {key}")
        prefix += part + "."


def apply_overrides(
    cls: type[C], data: typing.Mapping[str, Any] | None, overrides: typing.Iterable[str]
) -> C:
    """Merge dotted ``key=value`` overrides into ``data`` and build a validated ``cls``."""
    merged: dict[str, Any] = copy.deepcopy(dict(data or {}))
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(merged, cls, key, value)
    return from_dict(cls, merged)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:  # e.g. "config file x.yaml:3: mapping values are not allowed here"
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"config file {where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: typing.Iterable[str] = ()
) -> C:
    """YAML file (optional) + dotted overrides -> one validated, frozen config object; an error says
    which file the config came from."""
    overrides = list(overrides)
    data = load_yaml(path) if path else {}
    try:
        return apply_overrides(cls, data, overrides)
    except ConfigError as err:
        if not path:
            raise
        raise ConfigError(f"{err} (config file {path}{' + overrides' if overrides else ''})") from None


def config_from_args(cls: type[C], args: Any, flags: typing.Iterable[str] = ()) -> C:
    """A command line's config: YAML ``args.config`` (or a ``.yaml`` among the positional
    overrides), then ``flags`` (the ``key=value`` of the ``--flags`` given), then ``args.overrides``."""
    overrides = list(getattr(args, "overrides", None) or [])
    config = getattr(args, "config", None)
    positional = [o for o in overrides if "=" not in o and o.endswith((".yaml", ".yml"))]  # `rl4rec genrec grpo X.yaml k=v`
    if positional:
        if config or len(positional) > 1:
            raise ConfigError(f"one config file please: got {[config, *positional] if config else positional}")
        config, overrides = positional[0], [o for o in overrides if o != positional[0]]
    stray = [o for o in overrides if "=" not in o]
    if stray:
        raise ConfigError(f"{stray[0]!r} is not a key=value override (nor a .yaml config file)")
    return load_config(cls, config, [*flags, *overrides])


def replace(cfg: C, **changes: Any) -> C:
    """``dataclasses.replace`` that re-validates."""
    new = dataclasses.replace(cfg, **changes)
    validate(new)
    return new


def diff_from_defaults(cfg: Any) -> list[tuple[str, Any, dataclasses.Field]]:
    """Fields (dotted key, value, field) whose value differs from the class default, in declaration order."""
    out: list[tuple[str, Any, dataclasses.Field]] = []

    def walk(obj: Any, prefix: str) -> None:
        default_obj = type(obj)()
        for f in _name_order(type(obj)):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, prefix + f.name + ".")
            elif to_dict(value) != to_dict(getattr(default_obj, f.name)):
                out.append((prefix + f.name, value, f))

    walk(cfg, "")
    return out


def _name_order(cls: type) -> list[dataclasses.Field]:
    """Fields in declaration order, where keys of the shared base configs (classes whose own
    ``SHARED_KEYS`` is true: the run and training keys) stand where a pipeline's class writes them
    (re-annotated to change a default), else after the pipeline's own keys.

    So run names depend on what a pipeline declares, not on which base class first declared a key.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order: list[str] = []
    for klass in reversed(cls.__mro__):
        if klass.__dict__.get("SHARED_KEYS", False):
            continue
        for name in klass.__dict__.get("__annotations__", {}):
            if name in fields and name not in order:
                order.append(name)
    order += [n for n in fields if n not in order]
    return [fields[n] for n in order]


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) rows for every field, recursing into sections."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, prefix + f.name + "."))
            continue
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((prefix + f.name, _type_name(tp), repr(default), f.metadata.get("help", "")))
    return rows
