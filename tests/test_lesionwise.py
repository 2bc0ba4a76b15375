"""BraTS's official lesion-wise metrics: the package in its own environment, through the workflow's rule."""

from __future__ import annotations

import json
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sambrats import lesionwise, report
from sambrats.brats import GLI, LEGACY
from sambrats.metrics import WORST_HD95_MM
from sambrats.outputs import read_tsv, write_tsv

from conftest import run_snakemake, share_evaluation_environment

RUN = "nnunet_volumes/wt/brats2019/3d_fullres/seed2024"  # a 3D run of the demo config: rule lesionwise_metrics scores it
SHAPE = (96, 96, 64)


def constructed_case(workdir, case_id: str, seg: np.ndarray, prediction: np.ndarray, spacing=(1.0, 1.0, 1.0)):
    """A seg and a predicted mask as NIfTI in ``workdir``; their case-table and metrics rows (BraTS 2019,
    the demo's volume dataset)."""
    affine = np.diag([*spacing, 1.0])
    seg_path = workdir / "raw" / f"{case_id}_seg.nii.gz"
    mask_path = workdir / "results" / RUN / "predictions" / f"{case_id}.nii.gz"
    for path, volume in ((seg_path, seg), (mask_path, prediction)):
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(volume.astype(np.uint8), affine), path)
    case = {"case_id": case_id, "patient_id": case_id, "seg": str(seg_path.relative_to(workdir))}
    metrics = {"case_id": case_id, "dataset": "brats2019", "region": "wt", "method": "nnunet_3d", "prompt": "3d",
               "mask_file": str(mask_path.relative_to(workdir)),
               "split": "test", "seed": 2024}
    return case, metrics


def large_lesion_and_distant_false_positive():
    """A 40-voxel cube of tumour (BraTS 2019 labels: oedema around enhancing tumour) predicted exactly,
    plus a 3 x 3 x 3 false-positive blob 20 voxels away."""
    seg = np.zeros(SHAPE, np.uint8)
    seg[10:50, 10:50, 10:50] = 2
    seg[20:40, 20:40, 20:40] = 4
    prediction = (seg > 0).astype(np.uint8)
    prediction[70:73, 70:73, 30:33] = 1
    return seg, prediction


def test_the_official_package_counts_a_distant_false_positive_through_the_workflows_rule(
        evaluation_environment, tmp_path):
    """Global Dice barely sees the blob; the package, run by rule lesionwise_metrics in its own
    environment, finds 1 true and 1 false lesion and a panoptic quality well below the global Dice.
    A case without the region, predicted empty, scores as BraTS scores it; another, predicted with a
    blob, as one false lesion with the worst HD95."""
    share_evaluation_environment(tmp_path)
    seg, prediction = large_lesion_and_distant_false_positive()
    empty = np.zeros(SHAPE, np.uint8)
    blob = empty.copy()
    blob[40:44, 40:44, 20:24] = 1
    rows = [constructed_case(tmp_path, "BraTS19_TEST_0001_1", seg, prediction),
            constructed_case(tmp_path, "BraTS19_TEST_0002_1", empty, empty),
            constructed_case(tmp_path, "BraTS19_TEST_0003_1", empty, blob)]
    write_tsv(pd.DataFrame([case for case, _ in rows]), tmp_path / "results" / "cases" / "brats2019.tsv")
    write_tsv(pd.DataFrame([metrics for _, metrics in rows]), tmp_path / "results" / RUN / "metrics.tsv")
    target = f"results/{RUN}/lesionwise.tsv"
    # Only this rule may run: the hand-made tables stand for what discover_cases and nnU-Net 3D write.
    result = run_snakemake(tmp_path, "--cores", "1", "--allowed-rules", "lesionwise_metrics", "--", target)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "rule lesionwise_metrics:" in result.stdout and "brats_evaluation_env" not in result.stdout
    table = read_tsv(tmp_path / target).set_index("case_id")
    found = table.loc["BraTS19_TEST_0001_1"]
    assert (found.lesions_tp, found.lesions_fp, found.lesions_fn) == (1, 1, 0)
    assert found.lesion_dice == 1.0 and found.global_dice > 0.999
    assert found.panoptic_quality == pytest.approx(2 / 3)  # 1.0 x F1 of 1 TP and 1 FP
    assert found.global_dice - found.panoptic_quality > 0.3
    assert table.loc["BraTS19_TEST_0002_1", ["global_dice", "panoptic_quality", "global_hd95"]].tolist() == [1, 1, 0]
    false_alarm = table.loc["BraTS19_TEST_0003_1"]
    assert (false_alarm.lesions_tp, false_alarm.lesions_fp, false_alarm.lesions_fn) == (0, 1, 0)
    assert false_alarm.global_dice == 0 and false_alarm.global_hd95 == WORST_HD95_MM
    assert set(table.evaluation) == {"brats-evaluation 0.0.10 (gli)"}
    log = (tmp_path / "results" / "logs" / "lesionwise_metrics" / f"{RUN}.log").read_text()
    assert "brats-evaluation 0.0.10, panoptica 2.1.7, config gli, region wt: 3 cases" in log


def test_the_environment_holds_the_pinned_package_apart_from_ours(evaluation_environment):
    """The package's pins (pandas<3, numpy<2.3) live in its environment, ours in ours."""
    versions = subprocess.run(
        [str(lesionwise.environment_python(evaluation_environment)), "-c",
         "import json; from importlib.metadata import version; "
         "print(json.dumps({name: version(name) for name in ('brats-evaluation', 'panoptica', 'numpy', 'pandas')}))"],
        capture_output=True, text=True, check=True)
    assert json.loads(versions.stdout) == {"brats-evaluation": "0.0.10", "panoptica": "2.1.7", "numpy": "2.2.6",
                                           "pandas": "2.3.3"}
    assert int(pd.__version__.split(".")[0]) >= 3


@pytest.mark.parametrize("layout, region", [(GLI, "tc"), (LEGACY, "et"), (LEGACY, "wt")])
def test_masks_reach_the_package_as_label_3_of_the_region(tmp_path, monkeypatch, layout, region):
    """Either label convention: the reference is the region of the seg, the prediction the mask, both
    as label 3 (in the gli config's wt, tc and et groups) over their own headers."""
    monkeypatch.chdir(tmp_path)
    seg = np.zeros((20, 20, 10), np.int16)
    seg[2:8, 2:8, 2:5] = 1
    seg[10:14, 10:14, 5:8] = 2
    seg[4:6, 4:6, 3:4] = 4 if layout is LEGACY else 3
    prediction = np.zeros_like(seg, np.uint8)
    prediction[3:7, 3:7, 2:5] = 1
    case, metrics = constructed_case(tmp_path, "case", seg, prediction, spacing=(1.0, 1.0, 2.5))
    metrics["region"] = region
    jobs = lesionwise.write_jobs(pd.DataFrame([metrics]), pd.DataFrame([case]), layout, tmp_path / "jobs")
    assert jobs["region"] == region
    (job,) = jobs["cases"]
    reference, predicted = nib.load(job["reference"]), nib.load(job["prediction"])
    expected = np.isin(seg, sorted(layout.region_labels[region]))
    assert np.array_equal(np.asarray(reference.dataobj), np.where(expected, 3, 0))
    assert np.array_equal(np.asarray(predicted.dataobj), prediction * 3)
    assert reference.header.get_zooms() == predicted.header.get_zooms() == (1.0, 1.0, 2.5)


def test_a_mask_of_another_shape_than_its_ground_truth_names_both_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case, metrics = constructed_case(tmp_path, "BraTS19_X_1", np.ones((8, 8, 4)), np.ones((8, 8, 5)))
    with pytest.raises(ValueError, match=r"BraTS19_X_1: mask .*BraTS19_X_1.nii.gz has shape \(8, 8, 5\), its "
                                         r"ground truth .*BraTS19_X_1_seg.nii.gz \(8, 8, 4\)"):
        lesionwise.write_jobs(pd.DataFrame([metrics]), pd.DataFrame([case]), LEGACY,
                              tmp_path / "jobs")


def test_the_packages_infinite_and_undefined_numbers_follow_bratss_conventions():
    """Infinite HD95 becomes 373.13 mm; a case where neither mask holds the region, for which the
    package reports NaN, scores Dice, NSD and PQ 1 and HD95 0."""
    nan, inf = "nan", "inf"  # as they travel in the program's JSON
    missed = {"tp": 0, "fp": 0, "fn": 1, "sq_dsc": 0.0, "sq_hd95": inf, "sq_nsd": 0.0, "pq_dsc": 0.0,
              "global_bin_dsc": 0.0, "global_bin_hd95": inf, "global_bin_nsd": 0.0, "global_bin_volume_pred": 0,
              "global_bin_volume_ref": 500}
    both_empty = {"tp": 0, "fp": 0, "fn": 0, "sq_dsc": nan, "sq_hd95": nan, "sq_nsd": nan, "pq_dsc": nan,
                  "global_bin_dsc": nan, "global_bin_hd95": nan, "global_bin_nsd": nan, "global_bin_volume_pred": 0,
                  "global_bin_volume_ref": 0}
    results = {"brats_evaluation": "0.0.10", "config": "gli",
               "cases": [{"case_id": "a", **missed}, {"case_id": "b", **both_empty}]}
    metrics = pd.DataFrame({"case_id": ["b", "a"], "dataset": "d", "region": "et", "method": "m", "prompt": "3d",
                            "seed": ""})
    table = lesionwise.lesionwise_table(results, metrics).set_index("case_id")
    assert list(table.index) == ["b", "a"]  # the metrics table's order
    assert table.loc["a", "lesion_hd95"] == table.loc["a", "global_hd95"] == WORST_HD95_MM
    assert table.loc["a", ["lesions_fn", "panoptic_quality", "global_dice"]].tolist() == [1, 0, 0]
    assert table.loc["b", list(lesionwise.BOTH_EMPTY)].to_dict() == lesionwise.BOTH_EMPTY


def test_the_comparison_shows_false_lesions_and_panoptic_quality_beside_the_global_metrics(tmp_path):
    """Lesion-wise means for the rows whose every case the package scored; none for the others."""
    cases = [f"c{index}" for index in range(6)]
    rows = []
    for method, prompt, seeds in (("nnunet_3d", "3d", ["2024", "2025"]), ("medsam2", "3d", [""])):
        for seed in seeds:
            for case in cases:
                rows.append({"case_id": case, "dataset": "brats2019", "region": "wt", "method": method,
                             "prompt": prompt, "dice": 0.8, "iou": 0.7, "hd95": 2.0, "nsd": 0.9, "area_true": 10,
                             "area_pred": 10, "mask_file": "", "split": "test", "seed": seed})
    metrics = pd.DataFrame(rows)
    write_tsv(metrics, tmp_path / "metrics.tsv")
    lesions = metrics[["case_id", "dataset", "region", "method", "prompt", "seed"]].assign(
        lesions_tp=1, lesions_fp=np.where(metrics.method == "nnunet_3d", np.where(metrics.seed == "2024", 2, 4), 0),
        lesions_fn=0, lesion_dice=0.9, lesion_hd95=1.0, lesion_nsd=0.95,
        panoptic_quality=np.where(metrics.method == "nnunet_3d", 0.4, 0.9), global_dice=0.8, global_hd95=2.0,
        global_nsd=0.9)
    write_tsv(lesions[lesions.method == "nnunet_3d"], tmp_path / "nnunet.lesionwise.tsv")
    write_tsv(lesions[lesions.method == "medsam2"].iloc[:3], tmp_path / "medsam2.lesionwise.tsv")  # half its cases
    table = report.comparison_table(report.load_metrics([tmp_path / "metrics.tsv"],
                                                        [tmp_path / "nnunet.lesionwise.tsv",
                                                         tmp_path / "medsam2.lesionwise.tsv"]),
                                    resamples=200).set_index("row")
    baseline = table.loc["nnU-Net 3D"]
    assert baseline.lesions_fp_mean == 3.0  # the two replicates' 2 and 4 averaged per case
    assert baseline.panoptic_quality_mean == pytest.approx(0.4)
    assert np.isnan(table.loc["MedSAM-2 zero-shot, 3D", "panoptic_quality_mean"])
    shown = report.display_table(table.reset_index()).set_index("method")
    assert shown.loc["nnU-Net 3D", "FP lesions per case"] == "3.00"
    assert shown.loc["nnU-Net 3D", "PQ (lesion-wise)"] == "0.4000"
    assert shown.loc["MedSAM-2 zero-shot, 3D", "PQ (lesion-wise)"] == "–"
