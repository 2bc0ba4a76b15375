"""Patient-level train/val/test split, seeded and stratified by tumour size.

All cases (timepoints) of one patient land in the same split. Patients are ordered by tumour size
(their mean tumour voxels), cut into consecutive blocks of similar size that are shuffled with the
seed, and the split labels are laid out evenly along that order, so every split sees small and
large tumours and the counts match the ratios (largest remainder, at least one patient in every
split with a positive ratio when there are enough patients).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from .outputs import read_tsv, write_tsv

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def split_counts(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Patients per split: largest-remainder rounding, then one for each positive ratio if possible."""
    total = sum(ratios[name] for name in SPLITS)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"split ratios must add up to 1, got {total:g} ({ratios})")
    exact = {name: ratios[name] * n for name in SPLITS}
    counts = {name: int(math.floor(value)) for name, value in exact.items()}
    by_remainder = sorted(SPLITS, key=lambda name: (counts[name] - exact[name], SPLITS.index(name)))
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    wanted = [name for name in SPLITS if ratios[name] > 0]
    if n >= len(wanted):
        for name in wanted:
            if counts[name] == 0:
                donor = max(wanted, key=lambda other: counts[other])
                counts[donor] -= 1
                counts[name] += 1
    return counts


def spread_labels(counts: dict[str, int], rng: np.random.Generator) -> list[str]:
    """Split labels in an order that spaces each split evenly over the sequence."""
    positions = []
    for name in SPLITS:
        offset = rng.random()
        positions += [((i + offset) / counts[name], name) for i in range(counts[name])]
    return [name for _, name in sorted(positions)]


def patient_split(cases: pd.DataFrame, ratios: dict[str, float], seed: int) -> pd.DataFrame:
    """Assign each case a split; ``cases`` needs case_id, patient_id and tumour_voxels."""
    rng = np.random.default_rng(seed)
    patients = (
        cases.groupby("patient_id", sort=True)["tumour_voxels"].mean().sort_values(kind="stable")
    )
    order = list(patients.index)
    counts = split_counts(len(order), ratios)
    block = max(1, round(1 / min(r for r in ratios.values() if r > 0)))
    shuffled: list[str] = []
    for start in range(0, len(order), block):
        chunk = order[start : start + block]
        shuffled += [chunk[i] for i in rng.permutation(len(chunk))]
    split_of = dict(zip(shuffled, spread_labels(counts, rng)))
    table = cases[["case_id", "patient_id", "tumour_voxels"]].copy()
    table["split"] = table["patient_id"].map(split_of)
    return table.sort_values("case_id").reset_index(drop=True)[
        ["case_id", "patient_id", "split", "tumour_voxels"]
    ]


def write_split(cases_path, split_path, ratios: dict[str, float], seed: int) -> None:
    """Split the cases of a case table and write the split table."""
    table = patient_split(read_tsv(cases_path), ratios, seed)
    for name, group in table.groupby("split"):
        log.info("%s: %d patients, %d cases", name, group.patient_id.nunique(), len(group))
    write_tsv(table, split_path)
