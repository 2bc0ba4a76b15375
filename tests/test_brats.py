"""Case discovery and validation for both BraTS layouts, and the label conventions."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sambrats.brats import (
    GLI,
    LEGACY,
    CaseRejected,
    discover,
    find_case_folders,
    raw_files,
    region_mask,
    resolve_modality,
    write_case_tables,
)
from sambrats.outputs import read_tsv
from sambrats.synth import BROKEN_KINDS, write_cohort

from conftest import SMALL_SHAPE


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below root."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_gli_layout_is_discovered_with_patients_and_every_file(cohorts):
    accepted, rejected = discover(cohorts["gli"], GLI, "brats2024")
    assert rejected.empty
    assert len(accepted) == 6
    assert accepted.case_id.str.match(r"^BraTS-GLI-\d{5}-\d{3}$").all()
    assert (accepted.patient_id == accepted.case_id.str[:-4]).all()
    assert (accepted.grade == "").all()
    for name in ("t1n", "t1c", "t2w", "t2f", "seg"):
        assert accepted[name].map(lambda p: Path(p).is_file()).all()
        assert accepted[name].str.endswith(f"-{name}.nii.gz").all()
    assert (accepted["shape"] == "40x40x20").all()
    assert (accepted.voxel_size == "1x1x1").all()
    first = accepted.iloc[0]
    seg = np.asanyarray(nib.load(first.seg).dataobj)
    assert first.tumour_voxels == np.count_nonzero(seg)


def test_legacy_layout_keeps_the_grade_of_the_hgg_lgg_folder(cohorts):
    accepted, rejected = discover(cohorts["legacy"], LEGACY, "brats2019")
    assert rejected.empty
    assert sorted(set(accepted.grade)) == ["HGG", "LGG"]
    for row in accepted.itertuples():
        assert Path(row.flair).parent.parent.name == row.grade
    assert accepted.flair.str.endswith("_flair.nii.gz").all()


def test_legacy_layout_without_grade_level_and_with_container_folder(cohort_copy, tmp_path):
    root = cohort_copy("legacy")
    flat = tmp_path / "kaggle" / "MICCAI_BraTS2020_TrainingData"
    flat.mkdir(parents=True)
    for case in root.glob("*/*"):
        shutil.move(str(case), flat / case.name)
    accepted, _ = discover(tmp_path / "kaggle", LEGACY, "brats2019")
    assert len(accepted) == 6
    assert (accepted.grade == "").all()


@pytest.mark.parametrize(
    "name", ["BraTS19_2013_10_1", "Brats18_CBICA_AME_1", "BraTS20_Training_001", "BraTS2021_00000"]
)
def test_legacy_case_prefixes_of_every_release_are_recognised(tmp_path, name):
    (tmp_path / "HGG" / name).mkdir(parents=True)
    (tmp_path / "HGG" / "notes").mkdir()
    assert [case.case_id for case in find_case_folders(tmp_path, LEGACY)] == [name]


def test_gli_root_may_be_the_folder_containing_the_training_data(cohorts, tmp_path):
    outer = tmp_path / "BraTS2024"
    shutil.copytree(cohorts["gli"], outer / "training_data1_v2")
    accepted, _ = discover(outer, GLI, "brats2024")
    assert len(accepted) == 6


def test_uncompressed_nii_and_float_seg_are_accepted(cohort_copy):
    root = cohort_copy("gli")
    case = sorted(root.iterdir())[0]
    for path in case.glob("*.nii.gz"):
        image = nib.load(path)
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine), str(path)[:-3])
        path.unlink()
    seg_file = next(case.glob("*-seg.nii"))
    assert np.asanyarray(nib.load(seg_file).dataobj).dtype == np.float32
    accepted, rejected = discover(root, GLI, "brats2024")
    assert rejected.empty
    assert accepted.seg.str.endswith("-seg.nii").sum() == 1


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_each_broken_case_is_rejected_with_a_reason_naming_the_file(tmp_path, kind):
    write_cohort(tmp_path, LEGACY, 3, SMALL_SHAPE, seed=5, broken=[kind])
    accepted, rejected = discover(tmp_path, LEGACY, "brats2019")
    assert len(accepted) == 3
    assert list(rejected.case_id) == ["BraTS19_BROKEN_0000_1"]
    reason = rejected.reason.iloc[0]
    expected = {
        "missing_seg": "missing seg",
        "truncated_image": "unreadable",
        "foreign_labels": "outside the BraTS 2017-2021 (HGG/LGG) convention",
        "no_tumour": "no tumour",
        "shape_mismatch": "differs from",
    }[kind]
    assert expected in reason
    assert "BraTS19_BROKEN_0000_1" in reason and ".nii" in reason


def test_missing_modality_and_differing_affine_are_rejected(cohort_copy):
    root = cohort_copy("gli")
    first, second = sorted(root.iterdir())[:2]
    next(first.glob("*-t1c.nii.gz")).unlink()
    t2w = next(second.glob("*-t2w.nii.gz"))
    image = nib.load(t2w)
    shifted = image.affine.copy()
    shifted[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), shifted), t2w)
    _, rejected = discover(root, GLI, "brats2024")
    reasons = dict(zip(rejected.case_id, rejected.reason))
    assert reasons[first.name].startswith(f"missing t1c: no {first.name}-t1c.nii.gz")
    assert reasons[second.name] == f"affine of {t2w} differs from that of {second / (second.name + '-seg.nii.gz')}"


def test_non_integral_float_labels_are_rejected(cohort_copy):
    root = cohort_copy("gli")
    case = sorted(root.iterdir())[0]
    seg_file = case / f"{case.name}-seg.nii.gz"
    image = nib.load(seg_file)
    seg = np.asanyarray(image.dataobj).astype(np.float32)
    seg[seg == 2] = 2.5
    nib.save(nib.Nifti1Image(seg, image.affine), seg_file)
    _, rejected = discover(root, GLI, "brats2024")
    assert rejected.reason.tolist() == [f"non-integral label values [2.5] in {seg_file}"]


def test_gli_label_3_is_foreign_to_brats2019(cohort_copy):
    root = cohort_copy("legacy")
    case = sorted(root.glob("*/*"))[0]
    seg_file = case / f"{case.name}_seg.nii.gz"
    image = nib.load(seg_file)
    seg = np.asanyarray(image.dataobj).copy()
    seg[seg == 4] = 3
    nib.save(nib.Nifti1Image(seg, image.affine), seg_file)
    _, rejected = discover(root, LEGACY, "brats2019")
    assert "labels [3] outside" in rejected.reason.iloc[0]


def test_discovery_never_writes_to_the_raw_folder(cohort_copy, tmp_path):
    root = cohort_copy("legacy")
    before = tree_state(root)
    write_case_tables(root, "legacy", "brats2019", tmp_path / "c.tsv", tmp_path / "r.tsv", workers=2)
    assert tree_state(root) == before


def test_tables_are_written_and_parallel_discovery_matches_serial(cohorts, tmp_path):
    write_case_tables(cohorts["gli"], "gli", "brats2024", tmp_path / "a.tsv", tmp_path / "ar.tsv", workers=2)
    write_case_tables(cohorts["gli"], "gli", "brats2024", tmp_path / "b.tsv", tmp_path / "br.tsv", workers=1)
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    table = read_tsv(tmp_path / "a.tsv")
    assert list(table.columns[:4]) == ["case_id", "patient_id", "dataset", "grade"]
    assert read_tsv(tmp_path / "ar.tsv").columns.tolist() == ["case_id", "reason"]


def test_strict_mode_fails_on_any_rejection_and_writes_nothing(tmp_path):
    write_cohort(tmp_path / "raw", LEGACY, 3, SMALL_SHAPE, seed=5, broken=["no_tumour"])
    with pytest.raises(CaseRejected, match="strict: 1 brats2019 case"):
        write_case_tables(tmp_path / "raw", "legacy", "brats2019", tmp_path / "c.tsv", tmp_path / "r.tsv", strict=True)
    assert not (tmp_path / "c.tsv").exists()


def test_truncated_file_is_detected_even_when_the_header_reads(cohort_copy):
    root = cohort_copy("gli")
    case = sorted(root.iterdir())[0]
    path = case / f"{case.name}-t2f.nii.gz"
    with gzip.open(path) as handle:
        raw = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(raw[: len(raw) - 1000])  # a valid gzip stream with too few voxels
    nib.load(path)  # the header alone is fine
    _, rejected = discover(root, GLI, "brats2024")
    assert rejected.reason.iloc[0].startswith(f"unreadable {path}")


def test_a_case_under_both_hgg_and_lgg_is_rejected_with_both_paths_and_the_conflict(cohort_copy):
    root = cohort_copy("legacy")
    case = sorted((root / "HGG").iterdir())[0]
    shutil.copytree(case, root / "LGG" / case.name)
    accepted, rejected = discover(root, LEGACY, "brats2019")
    assert case.name not in set(accepted.case_id) and len(accepted) == 5
    (reason,) = rejected.reason[rejected.case_id == case.name]
    assert reason == (f"grade conflict: the case is under both HGG and LGG: "
                      f"{root / 'HGG' / case.name} and {root / 'LGG' / case.name}")


def test_a_second_copy_in_the_same_grade_is_rejected_and_the_first_kept(cohort_copy):
    root = cohort_copy("legacy")
    case = sorted((root / "HGG").iterdir())[0]
    shutil.copytree(case, root / "HGG" / "more" / case.name)
    accepted, rejected = discover(root, LEGACY, "brats2019")
    assert accepted.set_index("case_id").loc[case.name, "seg"].startswith(str(case / case.name))
    (reason,) = rejected.reason[rejected.case_id == case.name]
    assert reason.startswith(f"duplicate case id: {case} and {root / 'HGG' / 'more' / case.name}")


@pytest.mark.parametrize("value", [0.0, 17.5])
def test_a_modality_without_signal_is_rejected_naming_the_file(cohort_copy, value):
    root = cohort_copy("gli")
    case = sorted(root.iterdir())[1]
    path = case / f"{case.name}-t1c.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.full(image.shape, value, np.float32), image.affine), path)
    accepted, rejected = discover(root, GLI, "brats2024")
    assert case.name not in set(accepted.case_id)
    (reason,) = rejected.reason[rejected.case_id == case.name]
    assert reason == f"no signal: every voxel of {path} is {value:g}"


def test_symlinked_folders_are_followed_at_every_level(cohorts, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(cohorts["legacy"], store)
    root = tmp_path / "root"
    root.mkdir()
    (root / "HGG").symlink_to(store / "HGG")  # a grade folder that is a link
    (root / "LGG").mkdir()
    for case in (store / "LGG").iterdir():  # case folders that are links
        (root / "LGG" / case.name).symlink_to(case)
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "training").symlink_to(root)  # the training-data folder is a link
    for top in (root, outer):
        accepted, rejected = discover(top, LEGACY, "brats2019")
        assert len(accepted) == 6 and rejected.empty
        assert sorted(set(accepted.grade)) == ["HGG", "LGG"]
    assert len(raw_files(outer, LEGACY)) == 6 * 5


def test_a_root_in_the_other_layout_says_what_was_expected_and_what_was_found(cohorts):
    with pytest.raises(CaseRejected) as legacy_root:
        discover(cohorts["gli"], LEGACY, "brats2019")
    message = str(legacy_root.value)
    assert message.startswith(f"no brats2019 case folder below {cohorts['gli']}: layout 'legacy' "
                              "(BraTS 2017-2021 (HGG/LGG)) expects case folders like "
                              "HGG/BraTS19_2013_2_1/BraTS19_2013_2_1_seg.nii.gz")
    assert "found instead 6 folder(s) named like BraTS 2023/2024 GLI cases (e.g. " in message
    assert "is layout 'gli' meant?" in message
    with pytest.raises(CaseRejected, match=r"layout 'gli' .* like BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg"
                                            r"\.nii\.gz .*found instead 6 folder\(s\) named like BraTS 2017-2021"):
        discover(cohorts["legacy"], GLI, "brats2024")


def test_a_root_with_unrelated_content_lists_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "images").mkdir()
    with pytest.raises(CaseRejected, match="found instead: images, notes.txt$"):
        discover(tmp_path, GLI, "brats2024")


def test_raw_files_are_every_file_of_every_case_folder(cohorts):
    files = raw_files(cohorts["gli"], GLI)
    assert len(files) == 6 * 5 and files == sorted(files)
    assert all(Path(f).parent.name in Path(f).name for f in files)


LABELS = np.array([0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    "layout, region, expected",
    [
        (GLI, "wt", [0, 1, 1, 1, 0]),  # the resection cavity (4) is not tumour
        (GLI, "tc", [0, 1, 0, 1, 0]),
        (GLI, "et", [0, 0, 0, 1, 0]),
        (GLI, "rc", [0, 0, 0, 0, 1]),
        (GLI, "any", [0, 1, 1, 1, 1]),
        (LEGACY, "wt", [0, 1, 1, 0, 1]),
        (LEGACY, "tc", [0, 1, 0, 0, 1]),
        (LEGACY, "et", [0, 0, 0, 0, 1]),
        (LEGACY, "any", [0, 1, 1, 0, 1]),
    ],
)
def test_region_labels_of_both_conventions(layout, region, expected):
    assert region_mask(LABELS, layout, region).astype(int).tolist() == expected


def test_the_resection_cavity_does_not_exist_in_the_legacy_convention():
    with pytest.raises(ValueError, match="region 'rc' does not exist in the BraTS 2017-2021 .* label convention"):
        region_mask(LABELS, LEGACY, "rc")


def test_modality_names_of_the_other_layout_are_accepted():
    assert resolve_modality(GLI, "flair") == "t2f"
    assert resolve_modality(LEGACY, "t2f") == "flair"
    assert resolve_modality(LEGACY, "t1c") == "t1ce"
    with pytest.raises(ValueError, match="'dwi' does not exist in BraTS 2023/2024 GLI"):
        resolve_modality(GLI, "dwi")


def test_hidden_folders_are_ignored(cohort_copy):
    root = cohort_copy("gli")
    os.makedirs(root / ".snapshot" / "BraTS-GLI-77777-000")
    assert "BraTS-GLI-77777-000" not in [c.case_id for c in find_case_folders(root, GLI)]
