"""Per-case work over a process pool, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm


def map_cases(func: Callable, jobs: Sequence, workers: int, desc: str) -> list:
    """``[func(job) for job in jobs]`` in order, over ``workers`` processes when more than one."""
    progress = dict(total=len(jobs), desc=desc, unit="case")
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(func, jobs, chunksize=1), **progress))
    return [func(job) for job in tqdm(jobs, **progress)]
