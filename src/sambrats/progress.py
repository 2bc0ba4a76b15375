"""Progress of long loops: a bar on a terminal; in a log file or a pipe, one line when a stage
starts and one when it ends (a bar's frames would flood them)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger(__name__)


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable, desc: str, unit: str = "item", total: int | None = None) -> Iterator:
    """``items``, with a progress bar on a terminal, else a start and an end line in the log."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    if on_terminal():
        yield from tqdm(items, desc=desc, unit=unit, total=total)
        return
    log.info("%s: %s %s(s)", desc, "?" if total is None else total, unit)
    start, done = time.perf_counter(), 0
    for item in items:
        yield item
        done += 1
    log.info("%s: %d %s(s) done in %.1f s", desc, done, unit, time.perf_counter() - start)
