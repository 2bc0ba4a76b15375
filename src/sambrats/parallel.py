"""Per-case work over a process pool, with its progress (``sambrats.progress``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from .progress import progress


def map_cases(func: Callable, jobs: Sequence, workers: int, desc: str) -> list:
    """``[func(job) for job in jobs]`` in order, over ``workers`` processes when more than one."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(progress(pool.map(func, jobs, chunksize=1), desc, "case", len(jobs)))
    return [func(job) for job in progress(jobs, desc, "case")]
