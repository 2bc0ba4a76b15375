"""Discovery and slice extraction on the two real BraTS cases (skipped where they are absent)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from sambrats.brats import GLI, LEGACY, discover
from sambrats.slices import extract_slice


# The BraTS regions written out by hand from the challenges' definitions (labels per region).
GLI_REGIONS = {"wt": [1, 2, 3], "tc": [1, 3], "et": [3], "any": [1, 2, 3, 4]}
LEGACY_REGIONS = {"wt": [1, 2, 4], "tc": [1, 4], "et": [4], "any": [1, 2, 4]}


def expected_slice(seg_path, labels=None):
    """Largest axial slice of the labels (default: any label > 0) and its box, computed
    independently of sambrats."""
    seg = np.asarray(nib.load(seg_path).get_fdata())
    region = seg > 0 if labels is None else np.isin(seg, labels)
    best_k, best_area = 0, -1
    for k in range(seg.shape[2]):
        area = int(np.count_nonzero(region[:, :, k]))
        if area > best_area:
            best_k, best_area = k, area
    i, j = np.nonzero(region[:, :, best_k])
    return best_k, best_area, (int(i.min()), int(j.min()), int(i.max()), int(j.max()))


def test_real_brats2024_gli_case(real_data):
    accepted, rejected = discover(real_data / "BraTS2024-GLI", GLI, "brats2024")
    assert rejected.empty, rejected.reason.tolist()
    case = accepted.iloc[0]
    assert case.case_id == "BraTS-GLI-00000-000" and case.patient_id == "BraTS-GLI-00000"
    assert case["shape"] == "240x240x155"
    seg = np.asanyarray(nib.load(case.seg).dataobj)
    assert seg.dtype == np.float32  # stored as float in the release; cast safely
    assert set(np.unique(seg).astype(int)) <= {0, 1, 2, 3}
    k, area, box = expected_slice(case.seg)
    sample = extract_slice(case.case_id, case.t2f, case.seg, GLI, "wt", (0.5, 99.5))
    assert (sample.slice_index, sample.area, sample.box) == (k, area, box)
    assert sample.image.shape == (240, 240) and sample.image.max() == 1


def test_real_brats2019_case(real_data):
    accepted, rejected = discover(real_data / "BraTS2019", LEGACY, "brats2019")
    assert rejected.empty, rejected.reason.tolist()
    case = accepted.iloc[0]
    assert (case.case_id, case.grade) == ("Brats18_CBICA_AME_1", "HGG")
    assert set(np.unique(np.asanyarray(nib.load(case.seg).dataobj))) == {0, 1, 2, 4}
    k, area, box = expected_slice(case.seg)
    sample = extract_slice(case.case_id, case.t1ce, case.seg, LEGACY, "wt", (0.5, 99.5))
    assert (sample.slice_index, sample.area, sample.box) == (k, area, box)


@pytest.mark.parametrize("folder, layout, modality, regions", [
    ("BraTS2024-GLI", GLI, "t2f", GLI_REGIONS),
    ("BraTS2019", LEGACY, "t1ce", LEGACY_REGIONS),
])
def test_the_chosen_slice_of_every_region_on_the_real_cases(real_data, folder, layout, modality, regions):
    accepted, _ = discover(real_data / folder, layout, "real")
    case = accepted.iloc[0]
    slices = {}
    for region, labels in regions.items():
        k, area, box = expected_slice(case.seg, labels)
        sample = extract_slice(case.case_id, case[modality], case.seg, layout, region, (0.5, 99.5))
        assert (sample.slice_index, sample.area, sample.box) == (k, area, box), region
        slices[region] = k
    assert len(set(slices.values())) > 1  # the regions pick different slices on a real case
