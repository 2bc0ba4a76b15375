"""Time to extract the slice of one full-size 240x240x155 case against merely decompressing its files.

    .venv/bin/python benchmarks/slice_extraction.py

Uses the real BraTS 2019 case in ../shared/data/real when present, else writes a synthetic one.
Prints both times (best of several repeats, measured in this run) and their ratio.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
from pathlib import Path

from sambrats.brats import LEGACY, discover
from sambrats.slices import extract_slice, save_sample
from sambrats.synth import write_cohort

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "BraTS2019"
REPEATS = 5


def best_time(func) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = REAL if REAL.is_dir() else Path(tmp) / "raw"
        if root != REAL:
            write_cohort(root, LEGACY, 1, (240, 240, 155), seed=0)
        case = discover(root, LEGACY, "brats2019")[0].iloc[0]
        out = Path(tmp) / "out"
        out.mkdir()

        def extract():
            save_sample(extract_slice(case.case_id, case.t1ce, case.seg, LEGACY, "wt", (0.5, 99.5)), out)

        def decompress():
            for path in (case.t1ce, case.seg):
                with gzip.open(path, "rb") as handle:
                    handle.read()

        extract_s = best_time(extract)
        decompress_s = best_time(decompress)
    source = "real case " + case.case_id if root == REAL else "synthetic case"
    print(f"slice extraction, {source} ({case['shape']}), best of {REPEATS}")
    print(f"  extract + save slice : {extract_s * 1000:8.1f} ms")
    print(f"  gzip decompress only : {decompress_s * 1000:8.1f} ms")
    print(f"  ratio                : {extract_s / decompress_s:8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
