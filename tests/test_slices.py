"""Slice choice, orientation, boxes and normalisation on arrays with known answers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sambrats.brats import GLI, LEGACY, resolve_contrasts
from sambrats.outputs import read_tsv
from sambrats.slices import (
    INDEX_COLUMNS,
    VolumeSampling,
    axial_slice,
    extract_slice,
    largest_area_slice,
    load_sample,
    load_split,
    intensity_range,
    normalise,
    save_sample,
    tight_box,
    write_slice_dataset,
)


def test_largest_area_slice_prefers_the_lowest_index_on_ties():
    mask = np.zeros((6, 6, 5), dtype=bool)
    mask[1:3, 1:3, 1] = True  # area 4
    mask[0:2, 0:3, 3] = True  # area 6
    mask[2:5, 2:4, 4] = True  # area 6, later
    assert largest_area_slice(mask) == (3, 6)


def test_axial_slice_puts_j_in_rows_and_i_in_columns():
    volume = np.zeros((4, 3, 2))
    volume[3, 1, 1] = 7  # i = 3, j = 1, k = 1
    image = axial_slice(volume, 1)
    assert image.shape == (3, 4)
    assert image[1, 3] == 7


def test_tight_box_is_inclusive_with_x_as_column():
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[2:5, 7:10] = 1  # rows 2..4, columns 7..9
    assert tight_box(mask) == (7, 2, 9, 4)
    mask[:] = 0
    mask[6, 1] = 1
    assert tight_box(mask) == (1, 6, 1, 6)
    with pytest.raises(ValueError):
        tight_box(np.zeros((3, 3)))


def test_normalise_clips_to_brain_percentiles_and_keeps_background_zero():
    volume = np.zeros((10, 10, 11), dtype=np.float32)
    volume[:, :, 1:] = np.arange(1, 1001, dtype=np.float32).reshape(10, 10, 10)
    assert intensity_range(volume, (0, 100)) == (1, 1000)  # background zeros are not brain
    low, high = intensity_range(volume, (10, 90))
    assert (low, high) == pytest.approx(tuple(np.percentile(np.arange(1, 1001), [10, 90])))
    out = normalise(volume, low, high)
    assert out[:, :, 0].max() == 0
    assert out[volume == 500][0] == pytest.approx((500 - low) / (high - low))
    assert out[volume == 1][0] == pytest.approx(0.0)  # clipped up to the 10th percentile
    assert (out[volume == 1000] == 1).all() and out.max() == 1
    assert intensity_range(np.zeros((3, 3, 3)), (1, 99)) == (0.0, 1.0)


def write_case(folder, seg, image, case_id="c"):
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / f"{case_id}-img.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"{case_id}-seg.nii.gz")
    return folder / f"{case_id}-img.nii.gz", folder / f"{case_id}-seg.nii.gz"


def test_three_contrasts_become_the_channels_of_one_slice_each_normalised_by_its_volume(tmp_path):
    """contrasts: [t1c, t2w, t2f]: one image [H, W, 3], channel c the slice of contrast c scaled by
    its own volume's range; the detectors' PNG is RGB, a single contrast's stays grey."""
    seg = np.zeros((20, 16, 8), dtype=np.uint8)
    seg[10:15, 4:8, 5] = 2
    rng = np.random.default_rng(1)
    volumes = [rng.uniform(1, scale, seg.shape).astype(np.float32) for scale in (10, 100, 1000)]
    paths = [write_case(tmp_path, seg, volume, case_id=f"c{number}")[0] for number, volume in enumerate(volumes)]
    seg_path = write_case(tmp_path, seg, volumes[0])[1]
    sample = extract_slice("c", paths, seg_path, LEGACY, "wt", (0, 100))
    assert sample.image.shape == (16, 20, 3) and sample.slice_index == 5
    for channel, volume in enumerate(volumes):
        expected = normalise(volume[:, :, 5].T, volume.min(), volume.max())
        np.testing.assert_allclose(sample.image[:, :, channel], expected)
    single = extract_slice("c", paths[2], seg_path, LEGACY, "wt", (0, 100))
    np.testing.assert_array_equal(single.image, sample.image[:, :, 2])
    save_sample(sample, tmp_path)
    with Image.open(tmp_path / "c.png") as png:
        assert png.mode == "RGB" and png.size == (20, 16)
    save_sample(single, tmp_path)
    with Image.open(tmp_path / "c.png") as png:
        assert png.mode == "L"
    with pytest.raises(ValueError, match=r"contrasts \['t1c', 't2f'\]: one contrast, or three"):
        resolve_contrasts(LEGACY, ["t1c", "t2f"])
    assert resolve_contrasts(LEGACY, ["t1c", "t2w", "t2f"]) == ["t1ce", "t2", "flair"]


def test_extract_slice_on_a_hand_built_case(tmp_path):
    seg = np.zeros((20, 16, 8), dtype=np.uint8)
    seg[5:9, 3:6, 2] = 2          # area 12 on k = 2
    seg[10:15, 4:8, 5] = 4        # area 20 on k = 5 (legacy ET)
    seg[10:12, 4:6, 6] = 1        # area 4 on k = 6
    image = np.random.default_rng(0).uniform(1, 100, seg.shape).astype(np.float32)
    img_path, seg_path = write_case(tmp_path, seg, image)
    sample = extract_slice("c", img_path, seg_path, LEGACY, "wt", (0, 100))
    assert sample.slice_index == 5
    assert sample.area == 20
    assert sample.box == (10, 4, 14, 7)  # x = i (10..14), y = j (4..7)
    assert sample.image.shape == (16, 20)
    np.testing.assert_array_equal(sample.mask, (seg[:, :, 5].T > 0).astype(np.uint8))
    expected = normalise(image[:, :, 5].T, image.min(), image.max())
    np.testing.assert_allclose(sample.image, expected)
    tc = extract_slice("c", img_path, seg_path, LEGACY, "tc", (0, 100))
    assert (tc.slice_index, tc.area) == (5, 20)
    with pytest.raises(ValueError, match="region 'et' is empty"):
        extract_slice("c", img_path, seg_path, GLI, "et", (0, 100))


def test_slice_dataset_writes_npz_png_index_and_skips_empty_regions(tmp_path):
    rows = []
    for case_id, label in (("a", 4), ("b", 2)):
        seg = np.zeros((12, 12, 4), dtype=np.uint8)
        seg[2:6, 3:5, 1] = label
        seg[2:4, 3:5, 2] = 1
        img, seg_path = write_case(tmp_path / "raw" / case_id, seg, np.ones(seg.shape, np.float32) * 5, case_id)
        rows.append({"case_id": case_id, "flair": str(img), "seg": str(seg_path)})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.tsv", sep="\t", index=False)
    pd.DataFrame({"case_id": ["a", "b"], "split": ["train", "test"]}).to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    out = tmp_path / "slices"
    write_slice_dataset(tmp_path / "cases.tsv", tmp_path / "splits.tsv", out, "legacy", "t2f", "et", (0.5, 99.5))
    index = read_tsv(out / "index.tsv")
    assert index.columns.tolist() == INDEX_COLUMNS
    assert index.to_dict("records") == [
        {"sample": "a", "case_id": "a", "split": "train", "slice_index": 1, "area": 8, "x0": 2, "y0": 3, "x1": 5,
         "y1": 4}
    ]
    assert read_tsv(out / "skipped.tsv").case_id.tolist() == ["b"]
    sample = load_sample(out, "a")
    assert sample.box == (2, 3, 5, 4)
    png = np.asarray(Image.open(out / "a.png"))
    np.testing.assert_array_equal(png, np.round(sample.image * 255).astype(np.uint8))
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "a.png", "index.tsv", "skipped.tsv"]


def test_failed_slice_dataset_leaves_no_output(tmp_path):
    pd.DataFrame({"case_id": ["a"], "flair": ["/nonexistent.nii.gz"], "seg": ["/nonexistent-seg.nii.gz"]}).to_csv(
        tmp_path / "cases.tsv", sep="\t", index=False
    )
    pd.DataFrame({"case_id": ["a"], "split": ["train"]}).to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="no case has a non-empty 'wt' region"):
        write_slice_dataset(tmp_path / "cases.tsv", tmp_path / "splits.tsv", tmp_path / "slices", "legacy", "flair", "wt", (0.5, 99.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.tsv", "splits.tsv"]


def tumour_and_brain(tumour_slices, brain_slices, shape=(8, 8, 10)):
    """A region mask and a brain mask that hold the given axial slices."""
    mask, brain = np.zeros(shape, bool), np.zeros(shape, bool)
    for k in tumour_slices:
        mask[2:4, 2:5, k] = True
    for k in brain_slices:
        brain[1:7, 1:7, k] = True
    return mask, brain


def test_volume_sampling_draws_tumour_and_brain_slices_fixed_by_seed_and_case():
    mask, brain = tumour_and_brain(range(2, 7), range(1, 9))  # tumour on k 2..6; air on k 0 and 9
    sampling = VolumeSampling(tumour_per_case=2, background_per_case=2, seed=7)
    drawn = sampling.indices("c", mask, brain)
    assert drawn == sorted(drawn) and len(drawn) == 4
    assert len(set(drawn) & set(range(2, 7))) == 2 and len(set(drawn) & {1, 7, 8}) == 2
    assert sampling.indices("c", mask, brain) == drawn  # the same seed and case: the same slices
    assert len({tuple(sampling.indices(f"case{i}", mask, brain)) for i in range(12)}) > 1  # each case its own
    every = VolumeSampling(tumour_per_case=None, background_per_case=5, seed=7).indices("c", mask, brain)
    assert every == [1, 2, 3, 4, 5, 6, 7, 8]  # every tumour slice; all three background slices (fewer than 5)
    absent = VolumeSampling(tumour_per_case=2, background_per_case=2, seed=7).indices("c", *tumour_and_brain([], range(1, 9)))
    assert len(absent) == 2 and set(absent) <= set(range(1, 9))  # a case without the region: background only


def test_volume_slice_set_keeps_background_slices_without_a_box_and_region_absent_cases(tmp_path):
    """volume_slices: a tumour slice with its own tight box, a tumour-free slice (area 0, no box) from
    every case, those without the region included; segmentation training reads the tumour slices."""
    rows = []
    for case_id, label in (("a", 4), ("b", 2)):  # b holds no enhancing tumour (legacy ET = 4)
        seg = np.zeros((12, 12, 6), dtype=np.uint8)
        seg[2:6, 3:5, 1] = label
        seg[2:4, 3:5, 2] = label
        image = np.zeros(seg.shape, np.float32)
        image[1:11, 1:11, 1:5] = np.random.default_rng(0).uniform(1, 9, (10, 10, 4))  # brain on k 1..4
        img, seg_path = write_case(tmp_path / "raw" / case_id, seg, image, case_id)
        rows.append({"case_id": case_id, "flair": str(img), "seg": str(seg_path)})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.tsv", sep="\t", index=False)
    pd.DataFrame({"case_id": ["a", "b"], "split": ["train", "train"]}).to_csv(tmp_path / "splits.tsv", sep="\t",
                                                                             index=False)
    out = tmp_path / "slices"
    write_slice_dataset(tmp_path / "cases.tsv", tmp_path / "splits.tsv", out, "legacy", "t2f", "et", (0.5, 99.5),
                        sampling={"tumour_per_case": None, "background_per_case": 1, "seed": 3})
    index = read_tsv(out / "index.tsv").set_index("sample")
    tumour = index[index.area > 0]
    assert tumour.index.tolist() == ["a_k001", "a_k002"]
    assert tumour[["x0", "y0", "x1", "y1"]].astype(int).values.tolist() == [[2, 3, 5, 4], [2, 3, 3, 4]]
    background = index[index.area == 0]
    assert sorted(background.case_id) == ["a", "b"]  # b joins with its tumour-free slice: not skipped
    assert set(background.slice_index) <= {3, 4} | {1, 2} and (background.x0 == "").all()
    assert set(background.loc[background.case_id == "a", "slice_index"]) <= {3, 4}  # brain, no tumour
    assert read_tsv(out / "skipped.tsv").empty
    empty = load_sample(out, background.index[0], background.case_id.iloc[0])
    assert empty.box is None and not empty.mask.any() and empty.image.max() > 0
    trained = load_split(out, "train")
    assert [(s.case_id, s.slice_index, s.sample) for s in trained] == [("a", 1, "a_k001"), ("a", 2, "a_k002")]
    assert trained[1].box == (2, 3, 3, 4)
