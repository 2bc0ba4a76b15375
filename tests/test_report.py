"""The comparison: statistics with known answers, partial method sets, figures, provenance."""

from __future__ import annotations

import json
import logging
import os
import re
import socket

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from sambrats import report
from sambrats.devices import resolve_device
from sambrats.metrics import metrics_row, metrics_table
from sambrats.outputs import read_tsv, write_tsv
from sambrats.provenance import write_provenance

from conftest import REPO, write_samples


def test_identical_methods_give_p_1_and_a_zero_width_difference():
    values = np.random.default_rng(0).random(30)
    assert report.paired_wilcoxon(values, values) == 1.0
    low, high = report.bootstrap_ci(values - values, 2000, seed=1)
    assert low == high == 0.0


def test_clearly_different_methods_give_a_small_p():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.8, 0.9, 40)
    assert report.paired_wilcoxon(a, a - 0.2) < 1e-6


def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    values = np.random.default_rng(2).beta(5, 2, 50)
    low, high = report.bootstrap_ci(values, 5000, seed=3)
    assert low < values.mean() < high
    assert (low, high) == report.bootstrap_ci(values, 5000, seed=3)
    assert (low, high) != report.bootstrap_ci(values, 5000, seed=4)


def test_holm_on_a_worked_example():
    # Holm (1979): sorted p 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1, made monotone.
    adjusted = report.holm([0.04, 0.01, np.nan, 0.03, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.04, np.nan, 0.06, 0.06])
    np.testing.assert_allclose(report.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert report.holm([0.2]).tolist() == [0.2]  # a family of one is not adjusted


def metrics_for(method, prompt, dices, cases=None, **extra):
    cases = cases or [f"c{i}" for i in range(len(dices))]
    rows = []
    for case, value in zip(cases, dices):
        rows.append({"case_id": case, "dataset": "brats2024", "region": "wt", "method": method, "prompt": prompt, "dice": value,
                     "iou": value / (2 - value), "hd95": 10 * (1 - value), "nsd": value, "area_true": 100,
                     "area_pred": 100, "mask_file": "", **extra})
    return pd.DataFrame(rows)


def test_table_on_a_partial_method_set_in_the_study_order():
    metrics = pd.concat([
        metrics_for("lora_sam", "no_prompt", [0.7, 0.8, 0.9]),
        metrics_for("lora_sam", "gt_box", [0.8, 0.9, 1.0]),
    ])
    table = report.comparison_table(metrics, resamples=1000, seed=0)
    assert table.row.tolist() == ["LoRA-SAM + GT box", "LoRA-SAM, no prompt"]
    assert table.dice_mean.tolist() == pytest.approx([0.9, 0.8])
    assert table.p_vs_nnunet.isna().all()  # no nnU-Net in the set
    assert table.reference_dice.tolist() == [0.8985, 0.8625]


def test_differing_case_sets_are_compared_on_common_cases_against_nnunet():
    metrics = pd.concat([
        metrics_for("nnunet", "", [0.5, 0.6, 0.7, 0.8], ["a", "b", "c", "d"]),
        metrics_for("lora_sam", "gt_box", [0.5, 0.6, 0.7], ["a", "b", "c"]),
        metrics_for("lora_sam", "yolo_box", [0.1, 0.6, 0.7], ["a", "b", "c"], fallback=""),
    ])
    metrics.loc[(metrics.prompt == "yolo_box") & (metrics.case_id == "a"), "fallback"] = "no_prompt"
    metrics["fallback"] = metrics["fallback"].fillna("")
    training = {"nnunet": "key slices", "lora_sam": "key slices"}
    table = report.comparison_table(metrics, resamples=1000, seed=0, detector="YOLO11s",
                                    training=training).set_index("row")
    assert (table.n == 3).all()
    assert table.loc["nnU-Net", "dice_mean"] == pytest.approx(0.6)
    assert table.loc["nnU-Net", "hd95_mean"] == pytest.approx(4.0)
    assert table.loc["nnU-Net", "nsd_median"] == pytest.approx(0.6)
    assert np.isnan(table.loc["nnU-Net", "p_vs_nnunet"]) and np.isnan(table.loc["nnU-Net", "p_vs_nnunet_holm"])
    assert table.loc["LoRA-SAM + GT box", "p_vs_nnunet"] == 1.0  # identical on the common cases
    assert table.loc["YOLO11s + LoRA-SAM", "fallbacks"] == 1  # the configured detector, not the study's
    np.testing.assert_allclose(table.p_vs_nnunet_holm.dropna(), report.holm(table.p_vs_nnunet.dropna()))
    md = report.markdown(table.reset_index())
    assert "YOLO11s + LoRA-SAM (1 without detection) | study | brats2024 | wt |  | the slice | key slices | 3 |" in md
    assert "paired Wilcoxon signed-rank test" in md and "Holm-adjusted" in md
    page = report.html(table.reset_index(), notes=["a stand-in <model>"])
    assert "<td>YOLO11s + LoRA-SAM (1 without detection)</td>" in page and "Holm-adjusted" in page
    assert "a stand-in &lt;model&gt;" in page and "<th>HD95 mm mean ± sd</th>" in page


def test_holm_adjusts_within_each_dataset():
    rng = np.random.default_rng(5)
    frames = []
    for dataset in ("brats2024", "brats2019"):
        base = rng.uniform(0.6, 0.9, 12)
        for method, prompt, shift in (("nnunet", "", 0), ("lora_sam", "gt_box", 0.1), ("lora_sam", "no_prompt", 0.02)):
            frames.append(metrics_for(method, prompt, np.clip(base + shift + rng.normal(0, 0.03, 12), 0, 1))
                          .assign(dataset=dataset))
    table = report.comparison_table(pd.concat(frames), resamples=500, seed=0)
    for _, rows in table.groupby("dataset"):
        np.testing.assert_allclose(rows.p_vs_nnunet_holm.dropna(), report.holm(rows.p_vs_nnunet.dropna()))
        assert (rows.p_vs_nnunet_holm.dropna() >= rows.p_vs_nnunet.dropna()).all()


@pytest.fixture
def study(tmp_path):
    """Slices, masks and metrics of three methods, as the rules write them."""
    write_samples(tmp_path / "slices", 12)
    index = read_tsv(tmp_path / "slices/index.tsv")
    from sambrats.slices import load_sample

    rows = []
    for method, prompt in (("nnunet", ""), ("lora_sam", "gt_box"), ("lora_sam", "gt_box_jitter10"),
                           ("lora_sam", "no_prompt"), ("sam_zeroshot", "gt_box")):
        folder = tmp_path / "pred" / f"{method}_{prompt}"
        folder.mkdir(parents=True)
        for case_id in index.case_id[index.split == "test"]:
            truth = load_sample(tmp_path / "slices", case_id).mask
            pred = np.roll(truth, len(rows) % 3, axis=1)
            np.savez_compressed(folder / f"{case_id}.npz", mask=pred)
            for seed in ((1, 2) if method != "sam_zeroshot" else (None,)):  # trained methods: two replicates
                extra = {} if seed is None else {"seed": seed}
                rows.append(metrics_row(case_id, "brats2024", "wt", method, prompt, np.roll(pred, seed or 0, axis=0),
                                        truth, folder / f"{case_id}.npz", (1.0, 1.0), 2.0, **extra))
    write_tsv(metrics_table(rows), tmp_path / "metrics.tsv")
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_dice": [0.3, 0.6], "lr": [1e-3, 1e-4],
                            "seconds": [1.0, 1.0]})
    write_tsv(history, tmp_path / "history.tsv")
    write_tsv(pd.DataFrame({"epoch": [0, 1], "train_loss": [0.2, -0.3], "val_loss": [0.1, -0.2],
                            "pseudo_dice": [0.5, 0.7]}), tmp_path / "nnunet_history.tsv")
    return tmp_path


def test_every_figure_is_written_not_empty_and_the_same_bytes_twice(study):
    written = {}
    for folder in ("figures", "again"):
        outputs = {name: study / folder / f"{name}.png" for name in report.FIGURES}
        report.write_figures([study / "metrics.tsv"], study / "slices", outputs, seed=3,
                             lora_history=study / "history.tsv", nnunet_history=study / "nnunet_history.tsv")
        written[folder] = {path.name: path.read_bytes() for path in (study / folder).iterdir()}
    for name in report.FIGURES:
        for suffix in ("png", "svg"):
            assert len(written["figures"][f"{name}.{suffix}"]) > 1000, name
    assert written["figures"] == written["again"]


def test_provenance_records_versions_git_config_and_times(tmp_path):
    (tmp_path / "logs" / "train_lora_sam").mkdir(parents=True)
    (tmp_path / "logs" / "a.log").write_text("x")
    handler = logging.FileHandler(tmp_path / "logs" / "train_lora_sam" / "wt.log")
    logger = logging.getLogger("sambrats")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        resolve_device("cpu")  # as every computing job does: its node and device go into its log
    finally:
        logger.removeHandler(handler)
        handler.close()
    config = {"seed": 5, "demo": {"seed": 7}}
    write_provenance(tmp_path / "p.json", config, REPO, tmp_path / "logs")
    record = json.loads((tmp_path / "p.json").read_text())
    assert record["packages"]["torch"] and record["packages"]["snakemake"] == "9.27.1"
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert record["seeds"]["seed"] == 5 and record["config"] == config
    assert len(record["config_sha256"]) == 64
    assert record["start"] <= record["end"]
    assert "gpus" in record["hardware"]
    assert record["jobs"] == {"train_lora_sam/wt.log": {"host": socket.gethostname(), "device": "cpu", "gpu": None,
                                                        "slurm_job_id": os.environ.get("SLURM_JOB_ID")}}
    numeric = record["numerics"]["train_lora_sam/wt.log"]  # the job's numeric path, once torch is loaded
    assert numeric["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert numeric["torch_threads"] == torch.get_num_threads() and numeric["cpu"] == record["hardware"]["cpu"]


def test_rows_of_another_dataset_are_compared_within_their_own_dataset():
    medsam2 = metrics_for("medsam2", "3d", [0.4, 0.5], ["x", "y"]).assign(dataset="brats2019")
    metrics = pd.concat([metrics_for("nnunet", "", [0.5, 0.6]), metrics_for("lora_sam", "gt_box", [0.7, 0.8]), medsam2])
    table = report.comparison_table(metrics, resamples=500, seed=0).set_index("row")
    assert table.loc["MedSAM-2 zero-shot, 3D", "dataset"] == "brats2019"
    assert table.loc["MedSAM-2 zero-shot, 3D", "n"] == 2 and table.loc["LoRA-SAM + GT box", "n"] == 2
    assert np.isnan(table.loc["MedSAM-2 zero-shot, 3D", "p_vs_nnunet"])  # no nnU-Net on brats2019


def test_medsam2_has_a_test_split_row_beside_the_others_and_an_all_cases_row():
    test_cases, train_cases = ["a", "b", "c"], ["d", "e"]
    medsam2 = metrics_for("medsam2", "3d", [0.5, 0.6, 0.7, 0.9, 0.9], test_cases + train_cases)
    medsam2["split"] = ["test"] * 3 + ["train"] * 2
    metrics = pd.concat([metrics_for("nnunet", "", [0.1, 0.2, 0.3], test_cases),
                         metrics_for("nnunet_3d", "3d", [0.6, 0.7, 0.8], test_cases), medsam2])
    inputs = {"nnunet": {"brats2024": {"wt": "t2f slice"}}, "medsam2": {"brats2024": {"wt": "t1c volume"}}}
    training = {"nnunet": "key slices", "medsam2": "none (zero-shot)", "nnunet_3d": "whole training volumes"}
    table = report.comparison_table(metrics, resamples=500, seed=0, inputs=inputs, training=training).set_index("row")
    assert table.loc["MedSAM-2 zero-shot, 3D", "n"] == 3
    assert table.loc["MedSAM-2 zero-shot, 3D", "dice_mean"] == pytest.approx(0.6)
    # Paired with nnU-Net 3D on the test cases (each case 0.1 below it), not with the 2D baseline (0.4 above):
    pairs = report.paired_wilcoxon([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert table.loc["MedSAM-2 zero-shot, 3D", "p_vs_nnunet"] == pytest.approx(pairs)
    assert np.isnan(table.loc["nnU-Net 3D", "p_vs_nnunet"])  # the baseline of the 3D rows
    assert table.loc["MedSAM-2 zero-shot, 3D, all cases", "n"] == 5
    assert np.isnan(table.loc["MedSAM-2 zero-shot, 3D, all cases", "p_vs_nnunet"])  # nnU-Net has no train cases
    assert table.loc["nnU-Net", "n"] == 3  # the all-cases row does not narrow the shared cases
    assert table.loc["MedSAM-2 zero-shot, 3D", "input"] == "t1c volume"
    markdown = report.markdown(table.reset_index())
    assert "| MedSAM-2 zero-shot, 3D, all cases | volume | brats2024 | wt | t1c volume | a box on the key slice | none (zero-shot) | 5 |" in markdown
    assert "| nnU-Net 3D | volume | brats2024 | wt |  | none | whole training volumes | 3 |" in markdown  # no GT
    assert "| nnU-Net | study | brats2024 | wt | t2f slice | the slice | key slices | 3 |" in markdown  # it chose it


def test_a_region_present_row_for_the_ground_truth_prompted_method_beside_every_test_case():
    """Cases without the region count in the test rows (an empty mask of the oracle scores 1 there,
    a false positive of nnU-Net 3D 0); the region-present row leaves them out and is tested on its
    own cases; the key-slice row (only cases with the region have a slice) narrows no other row."""
    cases = ["a", "b", "c", "d"]
    medsam2 = metrics_for("medsam2", "3d", [0.5, 0.6, 0.7, 1.0], cases, split="test")
    medsam2.loc[3, "area_true"] = 0  # d: no region, no prompt, empty mask
    nnunet_3d = metrics_for("nnunet_3d", "3d", [0.6, 0.8, 0.9, 0.0], cases, split="test")
    nnunet_3d.loc[3, "area_true"] = 0
    key_slice = metrics_for("medsam2", "key_slice", [0.7, 0.8, 0.9], cases[:3], split="test")
    table = report.comparison_table(pd.concat([medsam2, nnunet_3d, key_slice]), resamples=200, seed=0).set_index("row")
    assert table.loc["MedSAM-2 zero-shot, 3D", "n"] == table.loc["nnU-Net 3D", "n"] == 4
    assert table.loc["MedSAM-2 zero-shot, 3D", "dice_mean"] == pytest.approx(0.7)
    present = table.loc["MedSAM-2 zero-shot, 3D, region present"]
    assert present.n == 3 and present.dice_mean == pytest.approx(0.6)
    assert present.p_vs_nnunet == pytest.approx(report.paired_wilcoxon([0.5, 0.6, 0.7], [0.6, 0.8, 0.9]))
    assert table.loc["MedSAM-2 zero-shot, key slice", "n"] == 3


def test_the_patient_is_the_unit_of_the_test_and_of_the_bootstrap():
    """Two timepoints of one patient are one unit: the test pairs the patients' mean Dice, the
    bootstrap draws patients with all their cases, n counts patients (cases beside it)."""
    cases = ["p1-t0", "p1-t1", "p2", "p3", "p4", "p5", "p6"]
    patients = {("brats2024", case): case.split("-")[0] for case in cases}
    nnunet = metrics_for("nnunet", "", [0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9], cases)
    lora = metrics_for("lora_sam", "gt_box", [0.9, 0.7, 0.6, 0.65, 0.75, 0.85, 0.95], cases)
    table = report.comparison_table(pd.concat([nnunet, lora]), resamples=300, seed=1, patients=patients).set_index("row")
    row = table.loc["LoRA-SAM + GT box"]
    assert (row.n, row.n_cases) == (6, 7)
    assert row.p_vs_nnunet == pytest.approx(report.paired_wilcoxon([0.8, 0.6, 0.65, 0.75, 0.85, 0.95],
                                                                   [0.5, 0.5, 0.6, 0.7, 0.8, 0.9]))
    assert row.dice_mean == pytest.approx(np.mean([0.9, 0.7, 0.6, 0.65, 0.75, 0.85, 0.95]))  # over cases, as BraTS
    clusters = [case.split("-")[0] for case in sorted(cases)]
    expected = report.bootstrap_ci(lora.set_index("case_id").dice.sort_index(), 300, 1, clusters=clusters)
    assert (row.dice_ci_low, row.dice_ci_high) == pytest.approx(expected)
    assert "| LoRA-SAM + GT box | study | brats2024 | wt |  | the slice and its box |  | 6 (7 cases) |" in report.markdown(
        table.reset_index())
    # a patient's cases travel together: here every draw has the mean 0.5, which a draw of cases has not
    assert report.bootstrap_ci([0.0, 1.0, 0.5], 500, 0, clusters=["a", "a", "b"]) == (0.5, 0.5)
    assert report.bootstrap_ci([0.0, 1.0, 0.5], 500, 0) != (0.5, 0.5)
    # one case per patient: the plain bootstrap's draws exactly (tables without timepoints keep their CIs)
    assert report.bootstrap_ci([0.1, 0.5, 0.9, 0.3], 200, 3, clusters=list("wxyz")) == report.bootstrap_ci(
        [0.1, 0.5, 0.9, 0.3], 200, 3)


def test_regions_are_compared_and_adjusted_separately():
    wt = metrics_for("nnunet", "", [0.8, 0.9, 0.7]), metrics_for("lora_sam", "gt_box", [0.7, 0.8, 0.6])
    et = metrics_for("nnunet", "", [0.5, 0.6], ["a", "b"]), metrics_for("lora_sam", "gt_box", [0.4, 0.5], ["a", "b"])
    metrics = pd.concat([*wt, *(table.assign(region="et") for table in et)])
    table = report.comparison_table(metrics, resamples=200, seed=0)
    assert list(zip(table.region, table.row)) == [("wt", "nnU-Net"), ("wt", "LoRA-SAM + GT box"),
                                                  ("et", "nnU-Net"), ("et", "LoRA-SAM + GT box")]
    assert table.n.tolist() == [3, 3, 2, 2]  # each region on its own shared cases
    assert table.dice_mean.tolist() == pytest.approx([0.8, 0.7, 0.55, 0.45])
    # the study's numbers stand beside the study's region (and 2D dataset) only
    scoped = report.comparison_table(metrics, resamples=200, seed=0, study_scope=("brats2024", "wt"))
    assert scoped.reference_dice.tolist()[:2] == [0.8687, 0.8985] and scoped.reference_dice[2:].isna().all()
    assert report.comparison_table(metrics, resamples=200, seed=0, study_scope=("brats2019", "wt")).reference_dice.isna().all()


def test_the_yolo_table_leads_with_the_test_split_and_says_what_each_detector_trained_on():
    """One line per detector (slice set, dataset), split and region: the test split first, its image
    and background-image counts; the study's figure labelled as val on key slices."""
    detection = pd.DataFrame([{"split": split, "images": images, "background_images": background,
                               "dataset": dataset, "slice_set": slice_set, "region": "wt", "seed": 1,
                               "map50": value, "map50_95": 0.5, "precision": 0.8, "recall": 0.7}
                              for dataset, slice_set, background in (("brats2024", "key_slice", 0),
                                                                     ("brats2019", "volume_slices", 5))
                              for split, value, images in (("val", 0.9, 6), ("test", 0.8, 15))])
    table = report.comparison_table(metrics_for("nnunet", "", [0.8, 0.9, 0.7]), resamples=200, seed=0)
    lines = report.markdown(table, detection).splitlines()
    first = lines.index("| YOLO detector | trained on | dataset | region | replicates | images (background) | mAP50 "
                        "| mAP50-95 | precision | recall |")
    assert lines[first + 2:first + 6] == [
        "| test | key slices (largest-area slice per case) | brats2024 | wt | 1 | 15 (0) | 0.800 | 0.500 | 0.800 | 0.700 |",
        "| test | slices sampled from the volumes | brats2019 | wt | 1 | 15 (5) | 0.800 | 0.500 | 0.800 | 0.700 |",
        "| val | key slices (largest-area slice per case) | brats2024 | wt | 1 | 6 (0) | 0.900 | 0.500 | 0.800 | 0.700 |",
        "| val | slices sampled from the volumes | brats2019 | wt | 1 | 6 (5) | 0.900 | 0.500 | 0.800 | 0.700 |",
    ]
    assert any("Study: YOLOv8m mAP50 0.973 (val, key slices)." in line for line in lines)
    assert "| HD95 mm median |" in lines[0]


def test_p_values_below_a_thousandth_never_print_as_zero():
    assert report.fmt_p(0.0004) == "< 0.001" and report.fmt_p(0.0123) == "0.012" and report.fmt_p(np.nan) == "–"


def test_report_texts_read_keys_that_exist_and_describe_the_trained_standin():
    landing = (REPO / "report" / "workflow.rst").read_text()
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    for key in re.findall(r'snakemake\.config\["(\w+)"\]', landing):
        assert key in demo, key
    overlays = (REPO / "report" / "medsam2_overlays.rst").read_text()
    assert "random-weight" not in overlays and "trained by the workflow" in overlays


def test_replicates_are_averaged_per_case_and_their_spread_reported():
    """Two training seeds: the row's mean is the mean of the replicates' means, the sd over seeds is
    theirs, each replicate's mean is listed, the paired test uses the per-case means over seeds."""
    nnunet = pd.concat([metrics_for("nnunet", "", [0.5, 0.6, 0.55, 0.52, 0.58, 0.61], seed=s) for s in (1, 2)])
    lora = pd.concat([metrics_for("lora_sam", "gt_box", [0.7, 0.8, 0.75, 0.72, 0.78, 0.81], seed=1),
                      metrics_for("lora_sam", "gt_box", [0.6, 0.7, 0.65, 0.62, 0.68, 0.71], seed=2)])
    zero_shot = metrics_for("sam_zeroshot", "gt_box", [0.1] * 6)  # not trained: no seed column value
    table = report.comparison_table(pd.concat([nnunet, lora, zero_shot]), resamples=200, seed=0).set_index("row")
    row = table.loc["LoRA-SAM + GT box"]
    assert row.n == 6 and row.replicates == 2
    assert row.dice_mean == pytest.approx((0.76 + 0.66) / 2)
    assert row.dice_seed_sd == pytest.approx(np.std([0.76, 0.66], ddof=1))
    assert row.dice_by_seed == "1:0.7600;2:0.6600"
    per_case = (np.array([0.7, 0.8, 0.75, 0.72, 0.78, 0.81]) + np.array([0.6, 0.7, 0.65, 0.62, 0.68, 0.71])) / 2
    assert row.dice_sd == pytest.approx(np.std(per_case, ddof=1))  # over cases, of the replicate means
    assert row.p_vs_nnunet == pytest.approx(report.paired_wilcoxon(per_case, [0.5, 0.6, 0.55, 0.52, 0.58, 0.61]))
    zero = table.loc["SAM zero-shot + GT box"]
    assert zero.replicates == 1 and np.isnan(zero.dice_seed_sd) and zero.dice_by_seed == ""
    shown = report.display_table(table.reset_index())
    assert shown.loc[shown.method == "LoRA-SAM + GT box", "Dice sd over seeds (replicates)"].item() == "0.0707 (2)"


def test_the_click_protocol_s_row_gets_its_aucs_read_from_the_saved_table(tmp_path):
    """The click row's Dice / NSD AUC (empty cells on the other rows of a saved table) averaged over
    its cases, the other rows without one; the point and click rows in the study's block."""
    table = pd.concat([metrics_for("lora_sam", "gt_box", [0.6, 0.7, 0.8], seed=1),
                       metrics_for("lora_sam", "points3", [0.5, 0.6, 0.7], seed=1),
                       metrics_for("lora_sam", "gt_box_clicks", [0.8, 0.9, 0.9], seed=1, dice_auc=3.0,
                                   nsd_auc=3.9)])
    table.loc[(table.prompt == "gt_box_clicks") & (table.case_id == "c1"), "dice_auc"] = 3.5
    table.loc[(table.prompt == "gt_box_clicks") & (table.case_id == "c2"), "dice_auc"] = 3.6
    write_tsv(table, tmp_path / "metrics.tsv")  # the other rows' AUC cells empty, as predict_sam writes them
    compared = report.comparison_table(report.load_metrics([tmp_path / "metrics.tsv"]), resamples=200,
                                       seed=0).set_index("row")
    assert compared.index.tolist() == ["LoRA-SAM + GT box", "LoRA-SAM + 3 random points",
                                       "LoRA-SAM + GT box + correction clicks"]
    assert compared.loc["LoRA-SAM + GT box + correction clicks", "dice_auc_mean"] == pytest.approx(3.3667, abs=1e-4)
    assert compared.loc["LoRA-SAM + GT box + correction clicks", "nsd_auc_mean"] == pytest.approx(3.9)
    assert compared.loc[["LoRA-SAM + GT box", "LoRA-SAM + 3 random points"], "dice_auc_mean"].isna().all()
    assert compared.loc["LoRA-SAM + 3 random points", "ground_truth_used"].endswith("3 seeded random points in it "
                                                                                    "(positive points of the region)")
    assert "| 3.367 |" in report.markdown(compared.reset_index())


def test_prompt_figures_read_each_method_s_prompts_beside_its_box_on_the_same_cases(tmp_path):
    """Dice per prompt type: MedSAM-2's box bar is its one-box 3D row on the cases its prompts ran on;
    Dice per click: each case's steps averaged over the replicates first."""
    metrics = pd.concat([metrics_for("lora_sam", "gt_box", [0.8, 0.9]), metrics_for("lora_sam", "points1", [0.5, 0.7]),
                         metrics_for("medsam2", "3d", [0.6, 0.7, 0.2], cases=["v1", "v2", "v3"]),
                         metrics_for("medsam2", "gt_box_clicks", [0.9], cases=["v2"])])
    types = report.prompt_types(metrics).set_index(["method", "prompt", "case_id"]).dice
    assert types.loc["medsam2", "box"].to_dict() == {"v2": 0.7}  # not v1, v3: no prompts ran there
    assert types.loc["lora_sam", "box"].tolist() == [0.8, 0.9] and types.loc["lora_sam", "points1"].tolist() == [0.5, 0.7]
    for seed, dices in ((1, [0.5, 0.7]), (2, [0.7, 0.9])):
        write_tsv(pd.DataFrame({"case_id": "c0", "seed": seed, "step": [0, 1], "dice": dices, "nsd": dices,
                                "click": ["", "3,4,+"]}), tmp_path / f"clicks{seed}.tsv")
    steps = report.load_clicks({"lora_sam": [tmp_path / "clicks1.tsv", tmp_path / "clicks2.tsv"]})
    assert steps.dice.tolist() == pytest.approx([0.6, 0.8]) and steps.step.tolist() == [0, 1]
    report.plot_clicks(steps, tmp_path / "clicks.png", seed=0)
    report.plot_prompt_types(metrics, tmp_path / "prompts.png", seed=0)
    assert (tmp_path / "clicks.png").stat().st_size > 1000 and (tmp_path / "prompts.svg").stat().st_size > 1000
