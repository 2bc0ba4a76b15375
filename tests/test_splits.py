"""Patient-level, seeded, size-stratified splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sambrats.splits import patient_split, split_counts

RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}


def cohort(n_patients: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        size = int(rng.integers(100, 100000))
        for t in range(1 + (p % 4 == 0)):
            rows.append({"case_id": f"P{p:04d}-{t:03d}", "patient_id": f"P{p:04d}", "tumour_voxels": size + t})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 19, 100, 1351])
def test_split_counts_add_up_and_follow_the_ratios(n):
    counts = split_counts(n, RATIOS)
    assert sum(counts.values()) == n
    if n >= 3:
        assert min(counts.values()) >= 1
    if n >= 10:  # below that, the one-patient minimum may move a split further
        for name, ratio in RATIOS.items():
            assert abs(counts[name] - ratio * n) <= 1


def test_split_counts_reject_ratios_that_do_not_add_up():
    with pytest.raises(ValueError, match="add up to 1"):
        split_counts(10, {"train": 0.7, "val": 0.2, "test": 0.2})


def test_zero_ratio_split_stays_empty():
    assert split_counts(10, {"train": 0.8, "val": 0.0, "test": 0.2}) == {"train": 8, "val": 0, "test": 2}


def test_same_seed_same_split_and_other_seed_other_split():
    cases = cohort(60)
    first = patient_split(cases, RATIOS, seed=1)
    assert first.equals(patient_split(cases.sample(frac=1, random_state=3), RATIOS, seed=1))
    assert not first.split.equals(patient_split(cases, RATIOS, seed=2).split)


def test_all_timepoints_of_a_patient_share_a_split():
    table = patient_split(cohort(40), RATIOS, seed=4)
    assert (table.groupby("patient_id").split.nunique() == 1).all()
    patients = table.drop_duplicates("patient_id").split.value_counts()
    assert patients.to_dict() == split_counts(40, RATIOS)


def test_every_split_sees_small_and_large_tumours():
    table = patient_split(cohort(200), RATIOS, seed=5).drop_duplicates("patient_id")
    quartile = pd.qcut(table.tumour_voxels, 4, labels=False)
    for name in ("train", "val", "test"):
        seen = set(quartile[table.split == name])
        assert seen == {0, 1, 2, 3}, name
    # Stratified: the split medians stay close to the cohort median.
    median = table.tumour_voxels.median()
    for _, group in table.groupby("split"):
        assert abs(group.tumour_voxels.median() - median) < 0.2 * median
