"""The item catalog: ids, titles, descriptions and SIDs — the single source of truth for items.

Built from a category folder's ``<C>.info.txt`` (required), ``<C>.item.json`` (descriptions,
optional) and ``<C>.index.json`` (SIDs, optional; else the SID column of info.txt, if any).
Examples carry item *ids* only; titles, descriptions and SID strings are always looked up here.

info.txt comes in two layouts, both read: ``sid<TAB>title<TAB>id`` (MiniOneRec) and
``title<TAB>id`` (LatentR³). Line *k* must hold item id *k*.
"""

from __future__ import annotations

import ast
import html
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from rl4rec.errors import InputError
from rl4rec.genrec.sid.codec import SIDCodec, SIDFormatError, parse_sid

log = logging.getLogger(__name__)

__all__ = ["ItemCatalog", "DataFormatError", "parse_description", "clean_text"]


class DataFormatError(InputError):
    """A data file is malformed; the message starts with ``file:line:`` and says what is wrong."""


def parse_description(raw: str) -> str:
    """``"['p1', 'p2']"`` -> ``"p1 p2"``; empty -> ``""`` (spec genrec.md §1.2).

    The release stores the *string form* of a Python list of paragraphs; 16 Industrial values are
    not valid literals (unescaped quotes). Those fall back to stripping the outer ``['``/``']``
    and splitting on the ``', '`` separators.
    Parsed with :func:`ast.literal_eval`, never ``eval``.
    """
    text = (raw or "").strip()
    if not text:
        return ""
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            inner = text[1:].removesuffix("]").strip()
            for q in ("'", '"'):
                inner = inner.removeprefix(q).removesuffix(q)
            paragraphs = re.split(r"""['"],\s*['"]""", inner)  # the list's item separators
            return re.sub(r"\s+", " ", " ".join(p.strip() for p in paragraphs if p.strip())).strip()
        if isinstance(value, (list, tuple)):
            return " ".join(str(p).strip() for p in value if str(p).strip())
        return str(value).strip()
    return text


_TAG = re.compile(r"<[^>]+>")


def clean_text(text: str) -> str:
    """HTML-unescape, strip tags, drop ``"``/newlines, collapse spaces (spec §2.1 ``clean``, minus
    the trailing period and the 2000-character drop)."""
    text = _TAG.sub(" ", html.unescape(text or ""))
    text = text.replace('"', "").replace("\n", " ").replace("\r", " ")
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class ItemCatalog:
    """Items ``0..N-1`` with their titles, descriptions (``""`` = none) and optional SIDs."""

    titles: tuple[str, ...]
    descriptions: tuple[str, ...]
    sids: SIDCodec | None = None
    name: str = ""
    brands: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.titles)
        if len(self.descriptions) != n:
            raise ValueError(f"{len(self.descriptions)} descriptions for {n} items")
        if self.brands and len(self.brands) != n:
            raise ValueError(f"{len(self.brands)} brands for {n} items")
        if self.sids is not None and self.sids.num_items != n:
            raise ValueError(f"SIDs for {self.sids.num_items} items, catalog has {n}")

    def __len__(self) -> int:
        return len(self.titles)

    def title(self, item: int) -> str:
        return self.titles[item]

    def description(self, item: int) -> str:
        return self.descriptions[item]

    def sid(self, item: int) -> str:
        """The item's SID string, e.g. ``<a_165><b_35><c_57>``."""
        if self.sids is None:
            raise ValueError(f"catalog {self.name!r} has no SIDs; build them with `rl4rec genrec build-sids`")
        return self.sids.string(item)

    def items_of_sid(self, sid: str) -> list[int]:
        """Items with this SID (several when SIDs collide, none when it is not in the catalog)."""
        if self.sids is None:
            raise ValueError(f"catalog {self.name!r} has no SIDs")
        return self.sids.items_of(sid)

    def text(self, item: int) -> str:
        """Embedding text: ``clean(title) + " " + clean(description)``, one trailing period (§2.1)."""
        parts = [p for p in (clean_text(self.titles[item]), clean_text(self.descriptions[item])) if p]
        if not parts:
            return "unknown item."
        return " ".join(parts).rstrip(". ") + "."

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(len(self))]

    def with_sids(self, sids: SIDCodec | None) -> ItemCatalog:
        """The same catalog with other SIDs (e.g. ones built by ``build-sids``)."""
        return replace(self, sids=sids)

    # -- files ---------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, directory: str | Path, name: str | None = None) -> ItemCatalog:
        """Read ``<C>.info.txt`` (+ ``item.json``, ``index.json`` when present) from ``directory``."""
        directory = Path(directory)
        name = name or directory.name
        info_path = directory / f"{name}.info.txt"
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path} not found (every category folder needs <Category>.info.txt)")
        titles, info_sids = _read_info(info_path)
        n = len(titles)

        descriptions = [""] * n
        brands: list[str] = []
        item_path = directory / f"{name}.item.json"
        if item_path.is_file():
            meta = json.loads(item_path.read_text(encoding="utf-8"))
            if set(meta) != {str(i) for i in range(n)}:
                raise DataFormatError(f"{item_path}: keys must be '0'..'{n - 1}' to match {info_path.name} ({len(meta)} keys)")
            brands = [""] * n
            for i in range(n):
                entry = meta[str(i)]
                if entry.get("title", titles[i]) != titles[i]:
                    raise DataFormatError(
                        f"{item_path}: item {i}: title {entry.get('title')!r} differs from {info_path.name} line {i + 1} {titles[i]!r}"
                    )
                descriptions[i] = parse_description(entry.get("description", ""))
                brands[i] = str(entry.get("brand", "") or "")

        sids = None
        index_path = directory / f"{name}.index.json"
        if index_path.is_file():
            sids = SIDCodec.from_index_json(index_path, num_items=n)
            if info_sids is not None:
                for i, s in enumerate(info_sids):
                    if s != sids.string(i):
                        raise DataFormatError(f"{info_path}:{i + 1}: SID {s} differs from {index_path.name} ({sids.string(i)})")
        elif info_sids is not None:
            sids = SIDCodec.from_strings(info_sids)
        return cls(tuple(titles), tuple(descriptions), sids, name, tuple(brands))

    def write(self, directory: str | Path, name: str | None = None) -> None:
        """Write ``info.txt``, ``item.json`` and (with SIDs) ``index.json`` in the release layout."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        name = name or self.name
        with (directory / f"{name}.info.txt").open("w", encoding="utf-8", newline="\n") as fh:
            for i, title in enumerate(self.titles):
                if "\t" in title or "\n" in title:
                    raise ValueError(f"item {i}: titles must not contain tabs or newlines: {title!r}")
                fh.write(f"{self.sid(i)}\t{title}\t{i}\n" if self.sids is not None else f"{title}\t{i}\n")
        meta = {
            str(i): {
                "title": t,
                "description": repr([self.descriptions[i]]) if self.descriptions[i] else "",
                "brand": self.brands[i] if self.brands else "",
                "categories": "",
            }
            for i, t in enumerate(self.titles)
        }
        (directory / f"{name}.item.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if self.sids is not None:
            self.sids.save_index_json(directory / f"{name}.index.json")


def _read_info(path: Path) -> tuple[list[str], list[str] | None]:
    titles: list[str] = []
    sids: list[str] = []
    layout = None
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                raise DataFormatError(f"{path}:{lineno}: empty line (line k must describe item k-1)")
            parts = line.split("\t")
            if layout is None:
                layout = len(parts)
                if layout not in (2, 3):
                    raise DataFormatError(f"{path}:{lineno}: expected 'sid<TAB>title<TAB>id' or 'title<TAB>id', got {len(parts)} fields")
            if len(parts) != layout:
                raise DataFormatError(f"{path}:{lineno}: {len(parts)} tab-separated fields, earlier lines have {layout}")
            try:
                item_id = int(parts[-1])
            except ValueError:
                raise DataFormatError(f"{path}:{lineno}: item id {parts[-1]!r} is not an integer") from None
            if item_id != lineno - 1:
                raise DataFormatError(f"{path}:{lineno}: item id {item_id}, expected {lineno - 1} (ids are line numbers)")
            titles.append(parts[-2])
            if layout == 3:
                try:
                    parse_sid(parts[0])
                except SIDFormatError as err:
                    raise DataFormatError(f"{path}:{lineno}: {err}") from None
                sids.append(parts[0])
    if not titles:
        raise DataFormatError(f"{path}: no items")
    return titles, (sids if layout == 3 else None)
