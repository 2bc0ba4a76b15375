"""The volume protocol's 2D methods and scoring: slices of a volume, per-slice prompts, masks over the
input's header, the scoring step, and the automatic pipeline's independence of the ground truth."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from transformers import SamModel

from sambrats import detection, medsam2, sam, sam_volumes, scoring
from sambrats.brats import GLI, LEGACY, discover, region_mask, load_labels
from sambrats.outputs import read_tsv, write_tsv
from sambrats.presets import SAM_STANDINS
from sambrats.slices import contrast_slice, volume_slices
from sambrats.splits import patient_split

CPU = torch.device("cpu")


def case_tables(root, layout, dataset, folder):
    """The case table and a patient split of a cohort (half of the patients test)."""
    cases, _ = discover(root, layout, dataset)
    write_tsv(cases, folder / "cases.tsv")
    write_tsv(patient_split(cases, {"train": 0.5, "val": 0.0, "test": 0.5}, seed=0), folder / "splits.tsv")
    return cases


@pytest.fixture(scope="module")
def lora_sam(tmp_path_factory):
    """A tiny SAM saved in the pretrained format with an (untrained) LoRA adapter beside it."""
    folder = tmp_path_factory.mktemp("lora_sam")
    torch.manual_seed(0)
    SamModel(sam.tiny_sam_config(**SAM_STANDINS["tiny-sam-256"])).save_pretrained(folder / "base")
    sam.sam_processor(256).save_pretrained(folder / "base")
    sam.add_lora(SamModel.from_pretrained(folder / "base"), 4, 8, 0.0, ["qkv"]).save_pretrained(folder / "adapter")
    return folder


@pytest.mark.parametrize("contrasts", [["t2f"], ["t1c", "t2w", "t2f"]])
def test_volume_slices_are_the_slice_datasets_images(cohorts, contrasts):
    cases, _ = discover(cohorts["gli"], GLI, "brats2024")
    paths = [cases.loc[0, name] for name in (f"{c}" for c in contrasts)]
    slices = volume_slices(paths, (0.5, 99.5))
    assert len(slices) == nib.load(paths[0]).shape[2]
    for k in (0, 7, len(slices) - 1):
        np.testing.assert_array_equal(slices[k], contrast_slice(paths, k, (0.5, 99.5)))


def test_truth_boxes_are_per_slice_in_column_row_order():
    region = np.zeros((20, 30, 4), dtype=bool)  # [i, j, k]: i is the column of a slice, j its row
    region[2:5, 10:14, 1] = True
    region[7, 3, 3] = True
    boxes = sam_volumes.truth_boxes(region)
    assert boxes == [None, ((2, 10, 4, 13), 1.0), None, ((7, 3, 7, 3), 1.0)]


def test_segment_volume_fills_prompted_slices_in_volume_order(lora_sam):
    model, processor = sam.load_base(lora_sam / "base", CPU)
    rng = np.random.default_rng(0)
    slices = [rng.random((24, 32)).astype(np.float32) for _ in range(3)]  # H = 24 rows (j), W = 32 columns (i)
    prompts = [None, ((4, 5, 20, 18), 0.9), None]
    volume = sam_volumes.segment_volume(model, processor, slices, prompts, CPU)
    assert volume.shape == (32, 24, 3) and volume.dtype == np.uint8
    assert not volume[:, :, 0].any() and not volume[:, :, 2].any()
    expected = sam.predict_prompts(model, processor, slices[1], {"box": (4, 5, 20, 18)}, CPU)["box"]
    np.testing.assert_array_equal(volume[:, :, 1], expected.T)


def test_oracle_masks_lie_over_the_input_and_score_every_test_case(cohort_copy, tmp_path, lora_sam):
    root = cohort_copy("legacy")
    cases = case_tables(root, LEGACY, "brats2019", tmp_path)
    test = scoring.test_cases(tmp_path / "splits.tsv")
    # one test case without the region: its whole tumour erased from the ground truth
    absent = test[0]
    seg_path = cases.set_index("case_id").loc[absent, "seg"]
    seg = nib.load(seg_path)
    nib.save(nib.Nifti1Image(np.zeros(seg.shape, np.uint8), seg.affine, seg.header), seg_path)
    sam_volumes.write_volume_masks(lora_sam / "base", lora_sam / "adapter", tmp_path / "cases.tsv",
                                   tmp_path / "splits.tsv", tmp_path / "masks", tmp_path / "prompts.tsv", "legacy",
                                   "wt", ["t2f"], (0.5, 99.5), sam_volumes.ORACLE, "cpu")
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == sorted(f"{c}.nii.gz" for c in test)
    table = cases.set_index("case_id")
    for case_id in test:
        mask, image = nib.load(tmp_path / "masks" / f"{case_id}.nii.gz"), nib.load(table.loc[case_id, "flair"])
        assert mask.get_data_dtype() == np.uint8 and mask.shape == image.shape
        np.testing.assert_array_equal(mask.affine, image.affine)
    absent_mask = np.asanyarray(nib.load(tmp_path / "masks" / f"{absent}.nii.gz").dataobj)
    assert not absent_mask.any()  # no slice holds the region: no prompt, nothing segmented
    prompts = read_tsv(tmp_path / "prompts.tsv")
    assert absent not in set(prompts.case_id) and (prompts.confidence == 1.0).all()
    _, seg = load_labels(table.loc[test[1], "seg"], LEGACY)
    assert len(prompts[prompts.case_id == test[1]]) == int(region_mask(seg, LEGACY, "wt").any(axis=(0, 1)).sum())

    scoring.write_volume_scores(tmp_path / "masks", tmp_path / "splits.tsv", tmp_path / "cases.tsv",
                                tmp_path / "metrics.tsv", "brats2019", "legacy", "wt", "lora_sam",
                                sam_volumes.ORACLE, 2.0, seed=7)
    metrics = read_tsv(tmp_path / "metrics.tsv").set_index("case_id")
    assert list(metrics.index) == test and (metrics.split == "test").all()
    assert metrics.loc[absent, "area_true"] == 0 and metrics.loc[absent, "dice"] == 1.0  # both empty: BraTS's 1
    assert metrics.loc[absent, "hd95"] == 0.0 and (metrics.seed.astype(str) == "7").all()


def test_a_missing_or_misshapen_mask_is_named(cohorts, tmp_path):
    cases = case_tables(cohorts["gli"], GLI, "brats2024", tmp_path)
    case_id = scoring.test_cases(tmp_path / "splits.tsv")[0]
    with pytest.raises(FileNotFoundError, match=f"{case_id}: no mask .*{case_id}.nii.gz"):
        scoring.score_volume_masks(tmp_path, [case_id], tmp_path / "cases.tsv", "brats2024", "gli", "wt",
                                   "lora_sam", "box_per_slice", 2.0)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), tmp_path / f"{case_id}.nii.gz")
    seg = cases.set_index("case_id").loc[case_id, "seg"]
    with pytest.raises(ValueError, match=rf"{case_id}: mask .* shape \(4, 4, 4\), its ground truth {seg}"):
        scoring.score_volume_masks(tmp_path, [case_id], tmp_path / "cases.tsv", "brats2024", "gli", "wt",
                                   "lora_sam", "box_per_slice", 2.0)


def test_the_automatic_prompt_needs_the_detectors_table(tmp_path, lora_sam):
    with pytest.raises(ValueError, match="yolo_per_slice needs the detector's table"):
        sam_volumes.write_volume_masks(lora_sam / "base", lora_sam / "adapter", tmp_path / "c.tsv", tmp_path / "s.tsv",
                                       tmp_path / "m", tmp_path / "p.tsv", "gli", "wt", ["t2f"], (0.5, 99.5),
                                       sam_volumes.AUTOMATIC, "cpu")


def test_detections_give_per_slice_prompts_and_the_volumes_key_slice():
    table = pd.DataFrame([("a", 1, 2, 3, 9, 8, 0.4), ("a", 3, 1, 1, 5, 6, 0.9), ("a", 5, 0, 0, 4, 4, 0.9),
                          ("b", 0, 1, 2, 3, 4, 0.3)], columns=detection.DETECTION_COLUMNS)
    assert detection.slice_prompts(table, "a", 6) == [None, ((2, 3, 9, 8), 0.4), None, ((1, 1, 5, 6), 0.9), None,
                                                      ((0, 0, 4, 4), 0.9)]
    assert detection.key_slice_prompt(table, "a") == (3, ((1, 1, 5, 6), 0.9))  # the most confident; a tie: lowest
    assert detection.key_slice_prompt(table, "b") == (0, ((1, 2, 3, 4), 0.3))
    assert detection.key_slice_prompt(table, "c") is None and detection.slice_prompts(table, "c", 2) == [None, None]


def test_the_automatic_pipeline_reads_no_ground_truth(cohort_copy, tmp_path, lora_sam):
    """YOLO on every slice of the test volumes prompts LoRA-SAM (each slice its box) and MedSAM-2 (the
    volume's most confident box on its slice); the detections and every mask are the same bytes with
    the seg files gone."""
    from conftest import write_samples
    from sambrats import yolo
    from sambrats.medsam2_standin import ClipTraining, write_standin

    write_samples(tmp_path / "slices", 8)
    yolo.export_dataset(tmp_path / "slices", tmp_path / "ds")
    config_dir = tmp_path / "ultralytics"
    yolo.train_yolo(tmp_path / "ds/data.yaml", "yolov8n.yaml", tmp_path / "runs/train", tmp_path / "best.pt",
                    tmp_path / "results.csv", yolo.YoloSettings(1, 64, 4, 10, 0, 0), "cpu", config_dir)
    standin = tmp_path / "medsam2.pt"
    write_standin(standin, tmp_path / "medsam2.history.tsv", 32,
                  ClipTraining(n_cases=2, shape=(32, 32, 16), seed=3, modality="t2f", lesions=0, image_steps=1,
                               image_batch=2, clips=1, clip_length=3, lr=3e-4), "cpu")
    settings = medsam2.MedsamSettings(image_size=32, checkpoint_image_size=512, box_jitter=0, largest_component=True,
                                      offload_video_to_cpu=False, offload_state_to_cpu=False, encoder_batch=8,
                                      overlays=0, seed=0, clip_percentiles=(0.5, 99.5), nsd_tolerance_mm=2.0)
    root = cohort_copy("gli")
    cases = case_tables(root, GLI, "brats2024", tmp_path)

    def automatic(name):
        folder = tmp_path / name
        detection.write_volume_detections(tmp_path / "best.pt", config_dir, tmp_path / "cases.tsv",
                                          tmp_path / "splits.tsv", folder / "detections.tsv", "gli", ["t2f"],
                                          (0.5, 99.5), 64, 0.0, "cpu")  # conf 0: it detects
        sam_volumes.write_volume_masks(lora_sam / "base", lora_sam / "adapter", tmp_path / "cases.tsv",
                                       tmp_path / "splits.tsv", folder / "sam", folder / "sam.tsv", "gli", "wt",
                                       ["t2f"], (0.5, 99.5), sam_volumes.AUTOMATIC, "cpu", folder / "detections.tsv")
        medsam2.predict_detected(standin, tmp_path / "cases.tsv", tmp_path / "splits.tsv", folder / "detections.tsv",
                                 folder / "medsam2", folder / "medsam2.tsv", "gli", ["t2f"], settings, "cpu")
        return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}

    first = automatic("with_truth")
    found = read_tsv(tmp_path / "with_truth/detections.tsv")
    assert len(found) > 0 and found.confidence.between(0, 1).all()
    assert read_tsv(tmp_path / "with_truth/sam.tsv").equals(found)  # LoRA-SAM's prompts: every detection
    keys = read_tsv(tmp_path / "with_truth/medsam2.tsv")
    test = scoring.test_cases(tmp_path / "splits.tsv")
    assert keys.case_id.tolist() == [case for case in test if case in set(found.case_id)]
    for row in keys.itertuples():  # MedSAM-2's prompt: the volume's most confident detection
        assert row.confidence == found.confidence[found.case_id == row.case_id].max()
    assert sorted(path.name for path in (tmp_path / "with_truth/medsam2").iterdir()) == sorted(f"{c}.nii.gz" for c in test)
    for seg in cases.seg:  # absolute paths: the cohort's root is
        Path(seg).unlink()
    assert automatic("without_truth") == first


def test_slice_level_detection_counts_prompted_slices_against_the_region():
    truth = np.zeros((8, 8, 6), dtype=bool)
    truth[2:4, 2:4, 1:4] = True  # the region on slices 1, 2, 3
    assert scoring.slice_detection(truth, [0, 2, 3]) == {"slices_tp": 2, "slices_fp": 1, "slices_fn": 1,
                                                          "slices_tn": 2}
    assert scoring.slice_detection(np.zeros_like(truth), []) == {"slices_tp": 0, "slices_fp": 0, "slices_fn": 0,
                                                                 "slices_tn": 6}


def test_the_comparison_reports_the_automatic_rows_slice_sensitivity_and_specificity():
    """Pooled over every slice of a replicate's test volumes, then the mean over replicates; shown
    for the rows that used no ground truth."""
    from sambrats import report

    rows = []
    for seed, (tp, fp) in (("2024", (3, 1)), ("2025", (2, 0))):
        for case in ("a", "b"):
            rows.append({"case_id": case, "dataset": "brats2024", "region": "wt", "method": "lora_sam",
                         "prompt": "yolo_per_slice", "dice": 0.6, "iou": 0.5, "hd95": 3.0, "nsd": 0.7,
                         "area_true": 10, "area_pred": 9, "mask_file": "", "split": "test", "seed": seed,
                         "slices_tp": tp, "slices_fp": fp, "slices_fn": 4 - tp, "slices_tn": 10 - fp})
    table = report.comparison_table(pd.DataFrame(rows), resamples=100)
    (row,) = table.itertuples()
    # seed 2024: sensitivity 6 / 8, specificity 18 / 20; seed 2025: 4 / 8, 20 / 20
    assert row.slice_sensitivity == pytest.approx((6 / 8 + 4 / 8) / 2)
    assert row.slice_specificity == pytest.approx((18 / 20 + 1.0) / 2) and row.slices == 28
    text = report.markdown(table)
    assert "| YOLOv8m + LoRA-SAM on every slice | brats2024 | wt | 28 | 0.625 ± 0.177 | 0.950 ± 0.071 |" in text
