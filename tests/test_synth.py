"""The synthetic cohort: deterministic, in the real layouts, with plausible contrast."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from sambrats.brats import GLI, LEGACY, discover
from sambrats.synth import T, labels_from_tissues, synth_images, synth_tissues, write_cohort

from conftest import SMALL_SHAPE


def arrays(root):
    return {
        str(path.relative_to(root)): np.asanyarray(nib.load(path).dataobj)
        for path in sorted(root.rglob("*.nii.gz"))
    }


def test_same_parameters_write_the_same_cohort(tmp_path):
    write_cohort(tmp_path / "a", GLI, 4, SMALL_SHAPE, seed=11)
    write_cohort(tmp_path / "b", GLI, 4, SMALL_SHAPE, seed=11)
    write_cohort(tmp_path / "c", GLI, 4, SMALL_SHAPE, seed=12)
    a, b, c = (arrays(tmp_path / name) for name in "abc")
    assert a.keys() == b.keys() and len(a) == 20
    assert all(np.array_equal(a[key], b[key]) for key in a)
    assert not all(np.array_equal(a[key], c[key]) for key in a if key in c)


def test_cohorts_use_each_layouts_names_labels_and_storage(cohorts):
    gli, _ = discover(cohorts["gli"], GLI, "brats2024")
    legacy, _ = discover(cohorts["legacy"], LEGACY, "brats2019")
    gli_labels = set()
    for path in gli.seg:
        data = np.asanyarray(nib.load(path).dataobj)
        assert data.dtype == np.float32  # like the real GLI release
        gli_labels |= set(np.unique(data).astype(int).tolist())
    legacy_labels = set()
    for path in legacy.seg:
        legacy_labels |= set(np.unique(np.asanyarray(nib.load(path).dataobj)).tolist())
    assert {1, 2, 3} <= gli_labels <= {0, 1, 2, 3, 4}
    assert legacy_labels == {0, 1, 2, 4}
    assert np.asanyarray(nib.load(legacy.flair.iloc[0]).dataobj).dtype == np.int16


def test_gli_cohort_has_patients_with_two_timepoints(tmp_path):
    write_cohort(tmp_path, GLI, 12, SMALL_SHAPE, seed=1)
    accepted, _ = discover(tmp_path, GLI, "brats2024")
    assert accepted.patient_id.value_counts().max() == 2


def test_contrast_oedema_bright_on_flair_and_t2_rim_bright_on_t1c():
    rng = np.random.default_rng(0)
    tissue = synth_tissues((64, 64, 32), rng, "HGG", cavity=False)
    images = synth_images(tissue, ("t1n", "t1c", "t2w", "t2f"), rng)

    def mean(name, tissue_name):
        image = images[name]
        return image[tissue == T[tissue_name]].mean() / image[tissue == T["white"]].mean()

    assert mean("t2f", "oedema") > 1.5
    assert mean("t2w", "oedema") > 1.5
    assert mean("t1c", "enhancing") > 1.1  # a thin rim: partial volume with the dark core blurs it
    assert mean("t1c", "enhancing") > 1.5 * mean("t1n", "enhancing")
    assert mean("t2f", "csf") < 0.6  # dark, blurred by partial volume at the small ventricles
    assert (images["t2f"][tissue == 0] == 0).all()


def test_look_alike_lesions_are_unlabelled_beside_the_tumour_and_bright_like_it_on_flair():
    for index in range(4):
        rng = np.random.default_rng(index)
        tissue = synth_tissues((96, 96, 48), rng, "HGG", cavity=False, lesions=3)
        images = synth_images(tissue, ("t2f",), rng)
        lesion = np.isin(tissue, [T["lesion"], T["lesion_core"]])
        tumour = np.isin(tissue, [T["oedema"], T["necrosis"], T["enhancing"]])
        assert lesion.any() and not labels_from_tissues(tissue, GLI)[lesion].any()
        assert not (ndimage.binary_dilation(lesion) & tumour).any()
        key = tumour.sum(axis=(0, 1)).argmax()
        assert lesion[:, :, key].any()  # on the slice the 2D methods see
        for look_alike, part in (("lesion", "oedema"), ("lesion_core", "necrosis")):
            ratio = images["t2f"][tissue == T[look_alike]].mean() / images["t2f"][tissue == T[part]].mean()
            assert 0.8 < ratio < 1.2, (look_alike, ratio)
    assert not (synth_tissues((96, 96, 48), np.random.default_rng(0), "HGG", cavity=False) == T["lesion"]).any()


def test_full_size_volume_is_supported(tmp_path):
    write_cohort(tmp_path, LEGACY, 1, (240, 240, 155), seed=2)
    accepted, rejected = discover(tmp_path, LEGACY, "brats2019")
    assert rejected.empty and accepted["shape"].tolist() == ["240x240x155"]
