"""Progress bars on a terminal, plain periodic log lines elsewhere (CI, files, sweeps)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("rl4rec.progress")
EVERY_S = 10.0


def track(iterable: Iterable[T], desc: str = "", enabled: bool = True, unit: str = "it") -> Iterator[T]:
    """Iterate with a tqdm bar when stderr is a TTY, else log ``desc: i/total`` every ``EVERY_S`` s."""
    total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    if not enabled:
        yield from iterable
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    i = 0
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= EVERY_S:
            last = now
            rate = i / (now - start)
            of = f"/{total}" if total else ""
            log.info("%s: %d%s %s (%.1f %s/s)", desc or "progress", i, of, unit, rate, unit)
    if i and time.monotonic() - start >= EVERY_S:
        log.info("%s: done, %d %s in %.1fs", desc or "progress", i, unit, time.monotonic() - start)
