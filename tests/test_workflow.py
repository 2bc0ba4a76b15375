"""The Snakemake workflow itself: dry runs, config errors at start, a real demo run."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import blosc2
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from sambrats.brats import GLI, LEGACY
from sambrats.clicks import CLICK_MODE, point_modes
from sambrats.metrics import WORST_HD95_MM
from sambrats.outputs import read_tsv
from sambrats.report import FIGURES
from sambrats.slices import INDEX_COLUMNS, load_sample
from sambrats.synth import write_cohort

from conftest import REPO, SHORT_DEMO, SNAKEMAKE, job_rules, run_snakemake

pytestmark = pytest.mark.workflow

DEMO = str(REPO / "config" / "demo.yaml")
DEMO_CONFIG = yaml.safe_load(Path(DEMO).read_text())
PROMPT_MODES = [*point_modes(DEMO_CONFIG["prompts"]["points"]), CLICK_MODE]  # beyond one box, per method
PAPER = str(REPO / "config" / "config.yaml")


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_dry_run_of_the_demo_lists_every_stage(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--configfile", DEMO)
    assert result.returncode == 0, result.stdout
    for rule in ("synth_cohort", "discover_cases", "split_cases", "build_slices", "sam_standin",
                 "train_lora_sam", "predict_sam", "yolo_dataset", "train_yolo", "evaluate_yolo",
                 "predict_yolo_boxes", "nnunet_raw", "nnunet_preprocess", "train_nnunet", "predict_nnunet",
                 "nnunet_volumes_raw", "nnunet_volumes_preprocess", "train_nnunet_volumes", "predict_nnunet_volumes",
                 "predict_sam_volumes", "score_volumes", "detect_volumes", "medsam2_automatic", "lesionwise_metrics", "compare_methods", "figures", "provenance", "medsam2_standin", "medsam2_predict",
                 "medsam2_collect", "medsam2_prompts", "all"):
        assert f"rule {rule}:" in result.stdout
    assert not (tmp_path / "results").exists()


def test_the_demo_is_the_default_config(tmp_path):
    result = run_snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stdout
    assert "results/demo/raw/brats2024" in result.stdout


def dry_run_job(stdout: str, rule: str) -> str:
    """The first job of ``rule`` in a dry run's output, up to its timestamp line (the next job's
    start; the order of jobs varies between runs)."""
    return stdout.split(f"rule {rule}:")[1].split("\n[")[0]


def test_dry_run_of_the_paper_config_on_a_full_size_synthetic_cohort(tmp_path):
    write_cohort(tmp_path / "raw" / "gli", GLI, 1, (240, 240, 155), seed=1)
    write_cohort(tmp_path / "raw" / "legacy", LEGACY, 1, (240, 240, 155), seed=1)
    roots = write_yaml(
        tmp_path / "roots.yaml",
        {"data": {"brats2024": {"root": str(tmp_path / "raw" / "gli")},
                  "brats2019": {"root": str(tmp_path / "raw" / "legacy")}}},
    )
    result = run_snakemake(tmp_path, "-n", "--configfile", PAPER, roots)
    assert result.returncode == 0, result.stdout
    assert "rule synth_cohort:" not in result.stdout  # the paper run never writes a demo cohort
    for rule in ("discover_cases", "split_cases"):
        assert result.stdout.count(f"rule {rule}:") == 2
    # each region's slice sets: key slices of each dataset, volume slices of each volume dataset
    assert result.stdout.count("rule build_slices:") == 2 * 3 + 2 * 3
    for rule in ("predict_sam", "predict_yolo_boxes", "train_nnunet"):
        assert result.stdout.count(f"rule {rule}:") == 3 * 3  # the study: one job per region and training seed
    # the study's key-slice models (brats2024) and each volume dataset's volume-slice models
    for rule in ("train_lora_sam", "train_yolo", "evaluate_yolo"):
        assert result.stdout.count(f"rule {rule}:") == 3 * 3 + 2 * 3 * 3  # per region and training seed
    for rule in ("nnunet_preprocess", "figures"):
        assert result.stdout.count(f"rule {rule}:") == 3  # shared by the replicates: one per region
    assert result.stdout.count("rule yolo_dataset:") == 3 + 2 * 3  # each slice set of a detector, per region
    assert result.stdout.count("rule compare_methods:") == 1
    assert result.stdout.count("rule medsam2_predict:") == 8 * 2 * 3  # n_batches, both datasets, each region
    # The volume protocol: both nnU-Net configurations, both LoRA-SAM prompts, each dataset, region and seed.
    for rule in ("train_nnunet_volumes", "predict_nnunet_volumes", "predict_sam_volumes"):
        assert result.stdout.count(f"rule {rule}:") == 2 * 2 * 3 * 3
    for rule in ("detect_volumes", "medsam2_automatic"):  # YOLO on every test slice, MedSAM-2 from its boxes
        assert result.stdout.count(f"rule {rule}:") == 2 * 3 * 3
    assert result.stdout.count("rule score_volumes:") == 2 * 2 * 3 * 3 + 2 * 3 * 3  # LoRA-SAM's and MedSAM-2's
    assert result.stdout.count("rule nnunet_volumes_preprocess:") == 2 * 3  # both configurations in one job
    assert result.stdout.count("rule lesionwise_metrics:") == (36 + 36 + 2 * 3 + 18)  # every 3D run
    assert result.stdout.count("rule download_weights:") == 1  # the weights come from resources/
    assert "input: resources/yolov8m.pt, results/yolo/wt/brats2024/key_slice/dataset" in result.stdout
    # the volume protocol's LoRA-SAM and detector: those trained on its own dataset's volume slices
    volume_job = dry_run_job(result.stdout, "predict_sam_volumes")
    assert "/volume_slices/seed" in volume_job and "key_slice" not in volume_job
    assert "/volume_slices/seed" in dry_run_job(result.stdout, "medsam2_automatic")
    assert "resources/sam-vit-base" in result.stdout.split("rule train_lora_sam:")[1].split("\n\n")[0]


def test_download_weights_offline_keeps_the_copied_weights_and_says_what_is_missing(tmp_path, monkeypatch):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources/yolov8m.pt").write_bytes(b"copied by hand")
    (tmp_path / "resources/MedSAM2_latest.pt").write_bytes(b"copied by hand too")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # Weights need no data: the paper config without its data roots, as on a login node before the data.
    dry = run_snakemake(tmp_path, "-n", "download_weights", "--configfile", PAPER)
    assert dry.returncode == 0 and "rule download_weights:" in dry.stdout, dry.stdout
    result = run_snakemake(tmp_path, "--cores", "1", "download_weights", "--configfile", PAPER)
    assert result.returncode != 0
    assert "resources/sam-vit-base is missing and could not be downloaded from facebook/sam-vit-base" in result.stdout
    assert f"copy the result to {tmp_path / 'resources/sam-vit-base'}" in result.stdout
    # The failed job restores what was there (outputs flagged update) and leaves nothing half-written.
    assert sorted(p.name for p in (tmp_path / "resources").iterdir()) == ["MedSAM2_latest.pt", "yolov8m.pt"]
    assert (tmp_path / "resources/yolov8m.pt").read_bytes() == b"copied by hand"


@pytest.mark.parametrize(
    "args, line",
    [
        (["--configfile", PAPER], "config key data.brats2024.root is not set"),
        (["--configfile", str(REPO / "tests/data/my-data.yaml")], "config key study is not set"),  # an override alone
        (["--config", "methods=[lora_sam,unet3d]"], "config key methods[1] = 'unet3d'"),
        (["--config", "seed=abc"], "config key seed = 'abc': 'abc' is not of type 'integer'"),
    ],
)
def test_a_wrong_config_fails_at_start_with_one_line(tmp_path, args, line):
    result = run_snakemake(tmp_path, "-n", *args)
    assert result.returncode != 0
    assert any(row.startswith(line) for row in result.stdout.splitlines()), result.stdout
    assert "Building DAG" not in result.stdout


def test_a_root_of_the_other_layout_fails_the_dry_run(tmp_path):
    """Both roots swapped: each names the layout it holds, before any job is planned."""
    write_cohort(tmp_path / "gli", GLI, 1, (24, 24, 8), seed=1)
    write_cohort(tmp_path / "legacy", LEGACY, 1, (24, 24, 8), seed=1)
    swapped = write_yaml(tmp_path / "swapped.yaml", {"data": {"brats2024": {"root": str(tmp_path / "legacy")},
                                                              "brats2019": {"root": str(tmp_path / "gli")}}})
    result = run_snakemake(tmp_path, "-n", "--configfile", PAPER, swapped)
    assert result.returncode != 0 and "Building DAG" not in result.stdout
    assert f"config key data.brats2024.root = '{tmp_path / 'legacy'}': no brats2024 case folder" in result.stdout
    assert "is layout 'legacy' meant?" in result.stdout


def test_missing_data_folder_fails_at_start(tmp_path):
    override = write_yaml(tmp_path / "o.yaml", {"data": {"brats2019": {"root": "/no/such/brats"}}})
    result = run_snakemake(tmp_path, "-n", "--configfile", DEMO, override)
    assert result.returncode != 0
    assert "config key data.brats2019.root = '/no/such/brats': folder does not exist" in result.stdout


def test_demo_run_writes_case_tables_with_the_broken_cases_rejected(demo_run):
    workdir = demo_run
    for dataset, prefix in (("brats2024", "BraTS-GLI-"), ("brats2019", "BraTS19_")):
        cases = read_tsv(workdir / f"results/cases/{dataset}.tsv")
        rejected = read_tsv(workdir / f"results/cases/{dataset}.rejected.tsv")
        assert len(cases) == 60 and cases.case_id.str.startswith(prefix).all()
        assert len(rejected) == 2
        assert rejected.reason.str.startswith("missing seg").sum() == 1
        assert rejected.reason.str.startswith("unreadable").sum() == 1
        log = (workdir / f"results/logs/discover_cases/{dataset}.log").read_text()
        assert log.count("rejected ") == 2


def test_demo_run_writes_split_and_slices_that_agree(demo_run):
    workdir = demo_run
    for dataset in ("brats2024", "brats2019"):
        split = read_tsv(workdir / f"results/splits/{dataset}.tsv")
        folder = workdir / f"results/slices/{dataset}/wt/key_slice"
        index = read_tsv(folder / "index.tsv")
        assert index.columns.tolist() == INDEX_COLUMNS
        assert set(index.split) == {"train", "val", "test"}
        assert dict(zip(index.case_id, index.split)) == dict(zip(split.case_id, split.split))
        for row in index.itertuples():
            sample = load_sample(folder, row.case_id)
            assert sample.box == (row.x0, row.y0, row.x1, row.y1)
            assert sample.area == row.area > 0
            assert sample.image.shape == tuple(DEMO_CONFIG["demo"]["shape"][:2])
            assert 0 <= sample.image.min() and sample.image.max() <= 1
            assert (folder / f"{row.case_id}.png").stat().st_size > 0
        assert np.all(index.x1 >= index.x0)


def test_demo_lora_sam_beats_the_stand_in_base_model_and_reports_every_mode(demo_run):
    workdir = demo_run
    metrics = read_tsv(workdir / "results/sam/wt/brats2024/key_slice/seed2024/metrics.tsv")
    test_cases = read_tsv(workdir / "results/slices/brats2024/wt/key_slice/index.tsv").query("split == 'test'").case_id
    modes = {"gt_box", "gt_box_jitter5", "gt_box_jitter10", "gt_box_jitter15", "gt_box_jitter20",
             "gt_box_jitter30", "no_prompt", "yolo_box", *PROMPT_MODES}
    assert set(metrics[metrics.method == "lora_sam"].prompt) == modes
    for _, group in metrics.groupby(["method", "prompt"]):
        assert sorted(group.case_id) == sorted(test_cases)
    mean = metrics.groupby(["method", "prompt"]).dice.mean()
    assert mean["lora_sam", "gt_box"] > mean["sam_zeroshot", "gt_box"] + 0.2
    log = (workdir / "results/logs/train_lora_sam/wt.brats2024.key_slice.seed2024.log").read_text()
    assert "LoRA r=8 on qkv, proj, q_proj, k_proj, v_proj, out_proj, lin1, lin2:" in log
    history = read_tsv(workdir / "results/sam/wt/brats2024/key_slice/seed2024/lora/history.tsv")
    assert len(history) == DEMO_CONFIG["sam"]["train"]["epochs"] and history.val_dice.max() > 0.5
    adapter = workdir / "results/sam/wt/brats2024/key_slice/seed2024/lora/adapter/adapter_model.safetensors"
    assert adapter.stat().st_mode & 0o222 == 0  # protected(): write permission removed


def test_demo_yolo_reports_detection_metrics_and_prompts_sam(demo_run):
    workdir = demo_run
    metrics = read_tsv(workdir / "results/yolo/wt/brats2024/key_slice/seed2024/metrics.tsv")
    assert metrics.split.tolist() == ["val", "test"]
    assert metrics.map50.between(0, 1).all() and metrics.map50.max() > 0
    boxes = read_tsv(workdir / "results/yolo/wt/brats2024/key_slice/seed2024/boxes.tsv")
    sam_rows = read_tsv(workdir / "results/sam/wt/brats2024/key_slice/seed2024/metrics.tsv").query("prompt == 'yolo_box'").set_index("case_id")
    assert sorted(boxes.case_id) == sorted(sam_rows.index)
    for row in boxes.itertuples():
        assert sam_rows.loc[row.case_id, "fallback"] == row.fallback
        if not row.fallback:
            assert sam_rows.loc[row.case_id, "prompt_box"] == f"{row.x0},{row.y0},{row.x1},{row.y1}"
    assert (workdir / "results/yolo/wt/brats2024/key_slice/seed2024/runs/train/weights/best.pt").is_file()
    assert not (workdir / "runs").exists()  # ultralytics wrote nothing outside results/yolo


def test_demo_nnunet_is_trained_and_tested_on_the_same_split(demo_run):
    workdir = demo_run
    split = read_tsv(workdir / "results/splits/brats2024.tsv")
    (fold,) = json.loads(next((workdir / "results/nnunet/wt/preprocessed").glob("Dataset501_*/splits_final.json")).read_text())
    assert fold["train"] == sorted(split.case_id[split.split == "train"])
    assert fold["val"] == sorted(split.case_id[split.split == "val"])
    metrics = read_tsv(workdir / "results/nnunet/wt/seed2024/metrics.tsv")
    assert sorted(metrics.case_id) == sorted(split.case_id[split.split == "test"])
    assert metrics.dice.mean() > 0.3
    fold_dir = workdir / "results/nnunet/wt/model/seed2024/Dataset501_BraTSslices/nnUNetTrainer__nnUNetPlans__2d/fold_0"
    assert (fold_dir / "progress.png").is_file() and list(fold_dir.glob("training_log_*.txt"))
    assert "Epoch 2" in (workdir / "results/logs/train_nnunet/wt.seed2024.log").read_text()


def test_demo_ends_with_the_comparison_figures_provenance_and_report(demo_run):
    workdir = demo_run
    table = read_tsv(workdir / "results/comparison.tsv")
    assert table.row.tolist() == [
        "nnU-Net", "SAM zero-shot + GT box", "LoRA-SAM + GT box", "LoRA-SAM + GT box, 10 px jitter",
        "LoRA-SAM + GT box, 20 px jitter", "LoRA-SAM, no prompt", "YOLOv8n + LoRA-SAM",
        "LoRA-SAM + interior point", "LoRA-SAM + 1 random point", "LoRA-SAM + 3 random points",
        "LoRA-SAM + 5 random points", "LoRA-SAM + GT box + interior point", "LoRA-SAM + GT box + correction clicks",
        "MedSAM-2 zero-shot, key slice",  # the study protocol's rows, then the volume protocol's
        "nnU-Net 3D", "nnU-Net 2D", "LoRA-SAM + GT box on every slice", "LoRA-SAM + GT box on every slice, region present",
        "YOLOv8n + LoRA-SAM on every slice", "MedSAM-2 zero-shot, 3D", "MedSAM-2 zero-shot, 3D, region present",
        "YOLOv8n + MedSAM-2, 3D", "MedSAM-2 zero-shot, 3D, all cases",
        "MedSAM-2 zero-shot + interior point, 3D", "MedSAM-2 zero-shot + 1 random point, 3D",
        "MedSAM-2 zero-shot + 3 random points, 3D", "MedSAM-2 zero-shot + 5 random points, 3D",
        "MedSAM-2 zero-shot + GT box + interior point, 3D", "MedSAM-2 zero-shot + GT box + correction clicks, 3D",
    ]
    assert table.protocol.tolist() == ["study"] * 14 + ["volume"] * 15
    # the study protocol's 2D rows on BraTS 2024 (dataset_2d), the volume protocol (and MedSAM-2) on BraTS 2019
    study_2d = (table.protocol == "study") & (table.method != "medsam2")
    assert set(table.dataset[study_2d]) == {"brats2024"} and set(table.dataset[~study_2d]) == {"brats2019"}
    all_cases = table.row == "MedSAM-2 zero-shot, 3D, all cases"
    prompted = table.method.eq("medsam2") & table.prompt.isin(PROMPT_MODES)  # prompts.volume_cases of them
    assert (table.n[~all_cases & ~prompted] >= 12).all() and (table.n_cases[all_cases] == 60).all()  # test / every case
    assert (table.n_cases[prompted] == DEMO_CONFIG["prompts"]["volume_cases"]).all()
    rows = table.set_index("row")
    assert rows.loc["nnU-Net", "input"] == "t2f slice"  # WT on T2-FLAIR (contrasts.wt)
    assert rows.loc["MedSAM-2 zero-shot, 3D", "input"] == "flair volume, one box on the key slice"  # BraTS 2019's name
    assert rows.loc["YOLOv8n + LoRA-SAM on every slice", "input"] == "flair slices of the volume, YOLO's box on each"
    assert rows.loc["YOLOv8n + LoRA-SAM on every slice", "ground_truth_used"] == "none"
    assert rows.loc["YOLOv8n + MedSAM-2, 3D", "ground_truth_used"] == "none"
    assert rows.loc["YOLOv8n + MedSAM-2, 3D", "input"] == "flair volume, YOLO's most confident box as the key slice's"
    volume = table.protocol == "volume"
    assert (table.n_cases[volume & ~all_cases & ~prompted & ~table.row.str.endswith("region present")]
            == rows.loc["nnU-Net 3D", "n_cases"]).all()  # every volume row on every test case
    assert (table.hd95_mean >= 0).all() and table.nsd_mean.between(0, 1).all()
    assert table.p_vs_nnunet_holm[table.method != "nnunet"].notna().any()
    md = (workdir / "results/comparison.md").read_text()
    assert "0.8687 / 0.8024" in md and "| val |" in md and "Holm-adjusted" in md
    page = (workdir / "results/comparison.html").read_text()
    assert "<td>LoRA-SAM + GT box</td>" in page and "HD95 mm mean ± sd" in page
    assert "MedSAM-2 is the stand-in standin-hiera-t" in md and "the base SAM is the stand-in tiny-sam-256" in md
    for name in FIGURES:
        assert (workdir / f"results/figures/wt/{name}.png").stat().st_size > 1000
        assert (workdir / f"results/figures/wt/{name}.svg").stat().st_size > 1000
    provenance = json.loads((workdir / "results/provenance.json").read_text())
    assert provenance["config"]["sam"]["base_model"] == "tiny-sam-256"
    assert provenance["jobs"]["train_lora_sam/wt.brats2024.key_slice.seed2024.log"]["device"] == "cpu"  # each computing job's own node
    result = run_snakemake(workdir, "--configfile", DEMO, "--report", "results/report.html")
    assert result.returncode == 0, result.stdout[-2000:]
    report = (workdir / "results/report.html").read_text()
    assert len(report) > 100_000 and "3D viewer" in report  # the viewer page travels with the report


def test_the_demo_shows_what_the_study_is_about(demo_run):
    """A MedSAM-2 stand-in that segments, LoRA over zero-shot SAM, prompts that matter (the GT box
    beats no prompt among look-alike lesions, a box jittered by 30 px loses), enough test cases."""
    results = demo_run / "results"
    for dataset in ("brats2024", "brats2019"):
        assert (read_tsv(results / f"splits/{dataset}.tsv").split == "test").sum() >= 12
    medsam2 = read_tsv(results / "medsam2/wt/brats2019/metrics.tsv").query("split == 'test' and area_true > 0")
    assert len(medsam2) >= 12 and medsam2.dice.mean() >= 0.7
    sam = read_tsv(results / "sam/wt/brats2024/key_slice/seed2024/metrics.tsv").groupby(["method", "prompt"]).dice.mean()
    assert sam["lora_sam", "gt_box"] > sam["sam_zeroshot", "gt_box"] + 0.5
    assert sam["lora_sam", "gt_box"] > sam["lora_sam", "no_prompt"] + 0.01
    assert sam["lora_sam", "gt_box_jitter30"] < sam["lora_sam", "gt_box"] - 0.01


def test_correction_clicks_end_no_worse_than_the_box_and_every_click_is_recorded(demo_run):
    """The CVPR 2025 click protocol on the demo: LoRA-SAM's mean Dice after the configured clicks is
    at least the GT box's (2D, every replicate). MedSAM-2 (3D) records every step, its step 0 is its
    one-box row and its clicks re-propagate (a mask changes); the demo's MedSAM-2 stand-in, trained
    on boxes alone, does not respond to prompts (see the README), so its Dice per click is not asserted."""
    results = demo_run / "results"
    clicks = DEMO_CONFIG["prompts"]["clicks"]
    for seed in DEMO_CONFIG["replicates"]:
        run = read_tsv(results / f"sam/wt/brats2024/key_slice/seed{seed}/metrics.tsv").query("method == 'lora_sam'")
        run = run.set_index(["prompt", "case_id"])
        steps = read_tsv(results / f"sam/wt/brats2024/key_slice/seed{seed}/clicks.tsv")
        assert steps.groupby("case_id").step.max().eq(clicks).all() and (steps.seed == seed).all()
        first = steps[steps.step == 0].set_index("case_id").dice
        assert np.allclose(first, run.loc["gt_box"].dice.loc[first.index])
        assert run.loc["gt_box_clicks"].dice.mean() >= run.loc["gt_box"].dice.mean()
    volumes = read_tsv(results / "medsam2/wt/prompts/brats2019/metrics.tsv").set_index(["prompt", "case_id"])
    steps = read_tsv(results / "medsam2/wt/prompts/brats2019/clicks.tsv")
    box = read_tsv(results / "medsam2/wt/brats2019/metrics.tsv").set_index("case_id").dice
    first = steps[steps.step == 0].set_index("case_id").dice
    assert len(first) == DEMO_CONFIG["prompts"]["volume_cases"] and np.allclose(first, box.loc[first.index])
    assert steps.groupby("case_id").step.max().eq(clicks).all()
    assert steps.groupby("case_id").dice.nunique().gt(1).any()  # the clicks change masks
    assert set(volumes.index.get_level_values("prompt")) == {*PROMPT_MODES}
    assert volumes.loc["gt_box_clicks"].prompt_points.str.match(r"^(\d+,\d+,\d+,[+-];?)+$").all()  # voxels i,j,k


VOLUME_RUNS = ["nnunet_volumes/wt/brats2019/3d_fullres/seed2024", "nnunet_volumes/wt/brats2019/2d/seed2024",
               "sam/wt/brats2019/seed2024/volumes/box_per_slice", "sam/wt/brats2019/seed2024/volumes/yolo_per_slice",
               "medsam2/wt/brats2019/seed2024/volumes/yolo_key_slice"]


def test_every_3d_run_is_scored_lesion_wise_by_the_official_package(demo_run):
    """Rule lesionwise_metrics on every 3D run (each replicate): every test case, the package's
    version named."""
    results = demo_run / "results"
    runs = VOLUME_RUNS + [run.replace("seed2024", "seed2025") for run in VOLUME_RUNS] + ["medsam2/wt/brats2019"]
    for run in runs:
        metrics = read_tsv(results / run / "metrics.tsv").query("split == 'test'")
        lesions = read_tsv(results / run / "lesionwise.tsv")
        assert sorted(lesions.case_id) == sorted(metrics.case_id) and len(lesions) >= 12
        assert (lesions.evaluation == "brats-evaluation 0.0.10 (gli)").all()
        assert (lesions.lesions_tp >= 0).all() and lesions.panoptic_quality.between(0, 1).all()
    table = read_tsv(results / "comparison.tsv").set_index("row")
    numbers = table[["lesions_fp_mean", "panoptic_quality_mean", "dice_mean"]].apply(pd.to_numeric)  # "" is NaN
    assert numbers.loc["nnU-Net 3D"].notna().all() and numbers.loc["YOLOv8n + LoRA-SAM on every slice"].notna().all()
    assert np.isnan(numbers.loc["LoRA-SAM + GT box", "panoptic_quality_mean"])  # a 2D row: not scored by it


def test_every_volume_method_segments_every_test_volume_over_its_header(demo_run):
    """The volume protocol: each method's masks of every test case (uint8 NIfTI over the input's
    affine), scored on all of them; baselines that learned; the automatic pipeline above 0.5."""
    results = demo_run / "results"
    cases = read_tsv(results / "cases/brats2019.tsv").set_index("case_id")
    split = read_tsv(results / "splits/brats2019.tsv")
    test = sorted(split.case_id[split.split == "test"])
    masks = {"nnunet_volumes/wt/brats2019/3d_fullres/seed2024": "predictions",
             "nnunet_volumes/wt/brats2019/2d/seed2024": "predictions",
             "sam/wt/brats2019/seed2024/volumes/box_per_slice": "masks",
             "sam/wt/brats2019/seed2024/volumes/yolo_per_slice": "masks",
             "medsam2/wt/brats2019/seed2024/volumes/yolo_key_slice": "masks"}
    for run, folder in masks.items():
        metrics = read_tsv(results / run / "metrics.tsv")
        assert sorted(metrics.case_id) == test and (metrics.split == "test").all()
        for case_id in test:
            predicted = nib.load(results / run / folder / f"{case_id}.nii.gz")
            original = nib.load(demo_run / cases.loc[case_id, "flair"])
            np.testing.assert_array_equal(predicted.affine, original.affine)
            assert predicted.shape == original.shape and predicted.get_data_dtype() == np.uint8
    table = read_tsv(results / "comparison.tsv").set_index("row")
    assert table.loc["nnU-Net 3D", "input"] == "t1+t1ce+t2+flair volume"  # what each method saw: all four
    assert float(table.loc["nnU-Net 3D", "dice_mean"]) >= 0.6  # a baseline that trained
    assert float(table.loc["nnU-Net 2D", "dice_mean"]) >= 0.6
    assert float(table.loc["YOLOv8n + LoRA-SAM on every slice", "dice_mean"]) > 0.5
    for row in ("nnU-Net 2D", "LoRA-SAM + GT box on every slice", "YOLOv8n + LoRA-SAM on every slice",
                "MedSAM-2 zero-shot, 3D", "YOLOv8n + MedSAM-2, 3D"):
        assert 0 < float(table.loc[row, "p_vs_nnunet"]) <= 1  # each paired with nnU-Net 3D
    prompts = read_tsv(results / "sam/wt/brats2019/seed2024/volumes/box_per_slice/prompts.tsv")
    assert (prompts.confidence == 1.0).all() and set(prompts.case_id) <= set(test)
    history = read_tsv(results / "nnunet_volumes/wt/brats2019/3d_fullres/seed2024/training_history.tsv")
    assert len(history) == DEMO_CONFIG["nnunet"]["volumes"]["epochs"]


def test_the_volume_protocol_s_2d_models_train_on_slices_sampled_from_whole_volumes(demo_run):
    """slices.volume_training: volume_slices. LoRA-SAM and YOLO of the volume rows train on tumour
    slices of every size and (YOLO) tumour-free background slices of the training volumes; the
    detector is scored on test slices with negatives; every row says what its models trained on."""
    results = demo_run / "results"
    sampling = DEMO_CONFIG["slices"]["volume_sampling"]
    index = read_tsv(results / "slices/brats2019/wt/volume_slices/index.tsv")
    per_case = index.assign(tumour=index.area > 0).groupby("case_id").tumour.agg(["sum", "size"])
    assert (per_case["sum"] == sampling["tumour_per_case"]).all()  # every demo case has >= 2 tumour slices
    assert (per_case["size"] - per_case["sum"] == sampling["background_per_case"]).all()
    key = read_tsv(results / "slices/brats2019/wt/key_slice/index.tsv").set_index("case_id").area
    tumour = index[index.area > 0]
    assert (tumour.area.to_numpy() < key[tumour.case_id].to_numpy()).mean() > 0.5  # mostly smaller cross-sections
    history = read_tsv(results / "sam/wt/brats2019/volume_slices/seed2024/lora/history.tsv")
    assert len(history) == DEMO_CONFIG["sam"]["train"]["epochs"]
    detection = read_tsv(results / "yolo/wt/brats2019/volume_slices/seed2024/metrics.tsv").set_index("split")
    test = index[index.split == "test"]
    assert detection.loc["test", "images"] == len(test)
    assert detection.loc["test", "background_images"] == (test.area == 0).sum() > 0
    labels = results / "yolo/wt/brats2019/volume_slices/dataset/labels/train"
    assert {path.stem for path in labels.glob("*.txt") if not path.read_text()} == set(
        index.query("split == 'train' and area == 0")["sample"])  # background images: empty label files
    table = read_tsv(results / "comparison.tsv").set_index("row")
    sampled = "slices sampled from the volumes"
    for row in ("LoRA-SAM + GT box on every slice", "YOLOv8n + LoRA-SAM on every slice"):
        assert table.loc[row, "trained_on"] == sampled
    assert table.loc["YOLOv8n + MedSAM-2, 3D", "trained_on"] == f"detector: {sampled}; MedSAM-2 zero-shot"
    assert table.loc["YOLOv8n + LoRA-SAM", "trained_on"].startswith("key slices")  # the study's row
    assert table.loc["nnU-Net 3D", "trained_on"] == "whole training volumes"
    markdown = (results / "comparison.md").read_text()
    assert f"| test | {sampled} | brats2019 | wt | 2 | {len(test)} ({(test.area == 0).sum()}) |" in markdown


def test_demo_medsam2_writes_niftis_over_the_original_volumes(demo_run):
    workdir = demo_run
    cases = read_tsv(workdir / "results/cases/brats2019.tsv").set_index("case_id")
    metrics = read_tsv(workdir / "results/medsam2/wt/brats2019/metrics.tsv")
    split = read_tsv(workdir / "results/splits/brats2019.tsv")
    assert sorted(metrics.case_id) == sorted(cases.index)  # zero-shot: every case, over both batches
    assert dict(zip(metrics.case_id, metrics.split)) == dict(zip(split.case_id, split.split))
    for case_id in metrics.case_id:
        predicted = nib.load(workdir / f"results/medsam2/wt/predictions/brats2019/{case_id}.nii.gz")
        original = nib.load(workdir / cases.loc[case_id, "t1ce"])
        np.testing.assert_array_equal(predicted.affine, original.affine)
        assert predicted.shape == original.shape
    assert len(list((workdir / "results/medsam2/wt/predictions/brats2019").glob("*.overlay.png"))) == 2
    assert read_tsv(workdir / "results/medsam2/wt/brats2019/metrics_2d.tsv").prompt.eq("key_slice").all()


def test_the_demo_prints_lines_not_progress_bar_frames_when_not_on_a_terminal(demo_run):
    console = (demo_run / "console.log").read_text()
    assert "%|" not in console and "\r" not in console  # no bar frames, ours or the libraries'
    steps = DEMO_CONFIG["medsam2"]["standin"]["image_steps"]
    assert f"MedSAM-2 stand-in, slices: {steps} step(s) done in" in console  # one line per stage instead
    assert len(console.encode()) < 450_000, len(console.encode())  # lines per job and epoch: two replicates


def test_second_demo_run_has_nothing_to_do(demo_run):
    workdir = demo_run
    result = run_snakemake(workdir, "-n", "--configfile", DEMO)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout


def test_strict_mode_fails_the_run_on_the_demos_broken_cases(tmp_path):
    small = write_yaml(
        tmp_path / "strict.yaml",
        {"strict": True, "datasets": ["brats2019"], "volume_datasets": ["brats2019"],
         "demo": {"n_cases": 3, "shape": [32, 32, 16]}},
    )
    result = run_snakemake(tmp_path, "results/cases/brats2019.tsv", "--cores", "1", "--configfile", DEMO, small)
    assert result.returncode != 0
    assert "strict: 2 brats2019 case(s) rejected" in (tmp_path / "results/logs/discover_cases/brats2019.log").read_text()
    assert not (tmp_path / "results/cases/brats2019.tsv").exists()


def copy_case(folder, new_id) -> None:
    """A copy of a legacy case folder as case ``new_id`` (folder and file names); copy2 keeps the
    files' old times, so only the set of inputs tells Snakemake."""
    copy = folder.with_name(new_id)
    shutil.copytree(folder, copy)
    for path in copy.iterdir():
        path.rename(path.with_name(path.name.replace(folder.name, new_id)))


def test_raw_data_changes_rerun_case_discovery_and_only_what_depends_on_it(tmp_path):
    raw = tmp_path / "raw"
    write_cohort(raw, LEGACY, 5, (32, 32, 16), seed=2)
    override = write_yaml(tmp_path / "o.yaml", {"datasets": ["brats2019"], "volume_datasets": ["brats2019"],
                                               "data": {"brats2019": {"root": str(raw)}}})
    target = "results/splits/brats2019.tsv"

    def snakemake(*args):
        result = run_snakemake(tmp_path, target, *args, "--configfile", DEMO, override)
        assert result.returncode == 0, result.stdout[-3000:]
        return result.stdout

    snakemake("--cores", "1")
    assert "Nothing to be done" in snakemake("-n")

    copy_case(sorted((raw / "HGG").iterdir())[0], "BraTS19_SYN_0099_1")
    dry = snakemake("-n")
    assert job_rules(dry) == {"discover_cases", "split_cases"}
    assert "reason: Set of input files has changed since last execution" in dry
    snakemake("--cores", "1")
    assert "BraTS19_SYN_0099_1" in read_tsv(tmp_path / target).case_id.tolist()
    assert "Nothing to be done" in snakemake("-n")

    replaced = next((raw / "LGG").iterdir())
    image_file = next(replaced.glob("*_t1ce.nii.gz"))
    image = nib.load(image_file)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj) * 2, image.affine), image_file)
    dry = snakemake("-n")
    assert job_rules(dry) == {"discover_cases", "split_cases"}
    assert f"reason: Updated input files: {image_file}" in dry
    snakemake("--cores", "1")

    shutil.rmtree(raw / "HGG" / "BraTS19_SYN_0099_1")
    dry = snakemake("-n")
    assert "reason: Set of input files has changed since last execution" in dry
    summary = snakemake("--summary")
    assert "set of input files changed" in summary


# Files that record when, where or how fast a run was made, not what it computed: left out of
# the byte comparison (the README lists them too).
RECORDS_OF_THE_RUN = {
    "logs/*": "time stamps",
    "benchmarks/*": "run times",
    "provenance.json": "run times and host",
    "sam/*history.tsv": "seconds per epoch",
    "yolo/*/seed*/results.csv": "ultralytics' time column",
    "yolo/*/seed*/weights/best.pt": "ultralytics' checkpoint records its date",
    "yolo/*/seed*/runs/*": "ultralytics' run folder: times, dates, absolute paths",
    "yolo/*/dataset/labels/*.cache": "ultralytics' label cache: absolute paths",
    "yolo/ultralytics_config/*": "ultralytics' settings: absolute paths",
    "nnunet*/*/model/*/checkpoint_*.pth": "nnU-Net's checkpoints carry its log with times",
    "nnunet*/*/model/*/training_log_*": "time stamps",
    "nnunet*/*/model/*/debug.json": "host and times",
    "nnunet*/*/model/*/progress.png": "nnU-Net plots the epoch durations",
    "nnunet*/*/seed*/predictions/nifti/predict_from_raw_data_args.json": "absolute paths",
    "report.html": "written by another test's --report, not by the run",
}


def result_files(workdir) -> dict[str, bytes]:
    """Every result file's bytes; nnU-Net's preprocessed arrays (blosc2 ``.b2nd``) by their content:
    blosc2 compresses large arrays on several threads, and the container bytes then vary from run
    to run while the arrays are equal."""
    root = workdir / "results"
    files = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_file() and not any(fnmatch.fnmatch(name, pattern) for pattern in RECORDS_OF_THE_RUN):
            files[name] = array_content(path) if path.suffix == ".b2nd" else path.read_bytes()
    return files


def array_content(path) -> bytes:
    """Shape, dtype and values of a blosc2 array file."""
    array = blosc2.open(str(path))[:]
    return repr((array.shape, array.dtype.str)).encode() + array.tobytes()


def test_the_same_config_gives_the_same_bytes_in_a_fresh_folder(short_demo_run, short_demo_rerun):
    """Every rule of the demo graph (the short demo, to keep `make test` within its budget), rerun
    in a fresh folder under another --cores: one thread per job either way, so the same bytes."""
    first, second = result_files(short_demo_run), result_files(short_demo_rerun)
    assert sorted(first) == sorted(second)
    for name in ("comparison.tsv", "comparison.md", "medsam2/et/brats2019/metrics.tsv", "splits/brats2024.tsv",
                 "viewer/et/brats2019/index.html",
                 "cases/brats2019.tsv", "slices/brats2024/et/key_slice/index.tsv", "medsam2/standin/standin-hiera-t.pt",
                 "sam/base/tiny-sam-256/model.safetensors"):
        assert name in first
    for seed in SHORT_DEMO["replicates"]:  # each replicate is the same bytes as a rerun of itself
        for name in ("sam/et/brats2019/key_slice/seed{}/metrics.tsv", "nnunet/et/seed{}/metrics.tsv",
                     "yolo/et/brats2019/key_slice/seed{}/metrics.tsv", "yolo/et/brats2019/key_slice/seed{}/boxes.tsv",
                     "sam/et/brats2019/key_slice/seed{}/lora/adapter/adapter_model.safetensors",
                     "sam/et/brats2019/seed{}/volumes/yolo_per_slice/metrics.tsv",
                     "medsam2/et/brats2019/seed{}/volumes/yolo_key_slice/metrics.tsv",
                     "nnunet_volumes/et/brats2019/3d_fullres/seed{}/metrics.tsv",
                     "nnunet_volumes/et/brats2019/2d/seed{}/metrics.tsv"):
            assert name.format(seed) in first
    for kind in (".npz", ".nii.gz", ".png", ".safetensors", ".pt"):
        assert any(name.endswith(kind) for name in first), kind
    assert sum(name.endswith(".npz") for name in first) >= 20 and len(first) >= 150
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"{len(differing)} of {len(first)} files differ, e.g. {differing[:10]}"


def test_training_seeds_matter_and_each_replicate_has_its_own_models_and_metrics(demo_run):
    """The demo's two replicates: other weights and other per-case metrics for every trained method;
    the same test cases, and the comparison reports both replicates and their spread."""
    results = demo_run / "results"
    first, second = DEMO_CONFIG["replicates"]
    for model in ("sam/wt/brats2024/key_slice/seed{}/lora/adapter/adapter_model.safetensors",
                  "yolo/wt/brats2024/key_slice/seed{}/weights/best.pt",
                  "nnunet/wt/model/seed{}/Dataset501_BraTSslices/nnUNetTrainer__nnUNetPlans__2d/fold_0/checkpoint_final.pth"):
        assert (results / model.format(first)).read_bytes() != (results / model.format(second)).read_bytes(), model
    for table in ("sam/wt/brats2024/key_slice/seed{}/metrics.tsv", "nnunet/wt/seed{}/metrics.tsv",
                  "nnunet_volumes/wt/brats2019/3d_fullres/seed{}/metrics.tsv",
                  "nnunet_volumes/wt/brats2019/2d/seed{}/metrics.tsv",
                  "sam/wt/brats2019/seed{}/volumes/yolo_per_slice/metrics.tsv",
                  "medsam2/wt/brats2019/seed{}/volumes/yolo_key_slice/metrics.tsv"):
        a, b = (read_tsv(results / table.format(seed)).query("method != 'sam_zeroshot'") for seed in (first, second))
        assert (a.seed.astype(str) == str(first)).all() and (b.seed.astype(str) == str(second)).all()
        assert a.case_id.tolist() == b.case_id.tolist(), table
        assert not np.allclose(a.dice, b.dice), table  # each replicate's masks
    losses = [read_tsv(results / f"sam/wt/brats2024/key_slice/seed{seed}/lora/history.tsv").train_loss for seed in (first, second)]
    assert not np.allclose(*losses)  # LoRA-SAM's training took another path
    comparison = read_tsv(results / "comparison.tsv").set_index("row")
    # every trained method, and MedSAM-2 prompted by each replicate's detector
    trained = comparison.method.isin(["nnunet", "lora_sam", "nnunet_3d", "nnunet_2d"]) | (
        comparison.prompt == "yolo_key_slice")
    assert (comparison.replicates[trained] == 2).all() and (comparison.replicates[~trained] == 1).all()
    assert comparison.dice_seed_sd[trained].notna().all()
    assert comparison.loc["nnU-Net", "dice_by_seed"].count(":") == 2
    assert "sd over seeds" in (results / "comparison.md").read_text()
    assert (results / "figures/wt/replicates.png").stat().st_size > 1000


def test_every_job_runs_on_the_pinned_numeric_path(short_demo_run):
    """Read back from inside each job (what it logged of its own process), not from the config."""
    logs = short_demo_run / "results/logs"
    records = json.loads((short_demo_run / "results/provenance.json").read_text())["numerics"]
    assert set(records) == {str(path.relative_to(logs)) for path in logs.rglob("*.log")}  # every job
    for job, record in records.items():
        assert record["numerics"] == "portable" and record["mkl_cbwr"] == "COMPATIBLE", job
        assert record["onednn_max_cpu_isa"] == "AVX2" and record["openblas_coretype"] == "Haswell", job
    training = records["train_lora_sam/et.brats2019.key_slice.seed2024.log"]  # torch's own report of its kernels and threads
    assert training["torch_cpu_capability"] == "AVX2" and training["torch_threads"] == 1  # demo: threads 1
    assert training["onednn_enabled"] is False and training["nnpack_enabled"] is False  # ATen's convolutions
    assert training["mkl"].startswith("Intel(R) oneAPI Math Kernel Library")


def test_a_checkout_moved_elsewhere_reruns_nothing(short_demo_run, short_demo_config, tmp_path):
    """No parameter holds the repository's path: the same commit in another folder is up to date."""
    moved = tmp_path / "moved"
    shutil.copytree(REPO, moved, ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake",
                                                                  ".brats-evaluation"),
                    symlinks=True)  # copy2: the files keep their times, as a `mv` keeps them
    configs = [arg.replace(str(REPO), str(moved)) for arg in short_demo_config]
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(moved / "Snakefile"), "--directory",
                             str(short_demo_run), "-n", *configs], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout


def test_a_second_region_runs_end_to_end_through_every_method(short_demo_run):
    """The enhancing tumour through every method with short trainings (the short demo): its own
    slices, models, metrics and comparison rows; cases without it have no slice (skipped with a
    reason) but count in 3D: MedSAM-2's oracle and nnU-Net 3D mask every test case."""
    results = short_demo_run / "results"
    table = read_tsv(results / "comparison.tsv")
    assert set(table.region) == {"et"}
    assert {"nnunet", "sam_zeroshot", "lora_sam", "medsam2"} <= set(table.method)
    # Three contrasts (contrasts.et): the slices' RGB channels, nnU-Net 2D's three, MedSAM-2's frames
    rows = table.set_index("row")
    assert rows.loc["LoRA-SAM + GT box", "input"] == "t1ce+t2+flair slice, prompt as in the row"  # BraTS 2019's names
    assert rows.loc["nnU-Net", "input"] == "t1ce+t2+flair slice"
    assert rows.loc["MedSAM-2 zero-shot, 3D", "input"] == "t1ce+t2+flair volume, one box on the key slice"
    sample = load_sample(results / "slices/brats2019/et/key_slice", read_tsv(results / "slices/brats2019/et/key_slice/index.tsv").case_id[0])
    assert sample.image.ndim == 3 and sample.image.shape[2] == 3
    dataset = json.loads((results / "nnunet/et/raw/Dataset501_BraTSslices/dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "t1ce", "1": "t2", "2": "flair"}
    for dataset, layout in (("brats2024", GLI), ("brats2019", LEGACY)):
        index = read_tsv(results / f"slices/{dataset}/et/key_slice/index.tsv")
        cases = read_tsv(results / f"cases/{dataset}.tsv")
        for row in index.itertuples():  # the largest enhancing-tumour slice, checked against the seg
            seg = np.asanyarray(nib.load(short_demo_run / cases.set_index("case_id").loc[row.case_id, "seg"]).dataobj)
            enhancing = np.isin(seg, sorted(layout.region_labels["et"]))
            assert row.area == enhancing.sum(axis=(0, 1)).max() == enhancing[:, :, row.slice_index].sum()
        skipped = read_tsv(results / f"slices/{dataset}/et/key_slice/skipped.tsv")
        assert len(index) + len(skipped) == len(cases)
        assert skipped.reason.str.contains("region 'et' is empty").all()
    medsam2 = read_tsv(results / "medsam2/et/brats2019/metrics.tsv").set_index("case_id")
    medsam2_skipped = read_tsv(results / "medsam2/et/brats2019/skipped.tsv")
    assert len(medsam2) == len(read_tsv(results / "cases/brats2019.tsv"))  # every case, with the region or not
    absent = medsam2.loc[medsam2_skipped.case_id]
    assert len(absent) and (absent.area_true == 0).all() and (absent.area_pred == 0).all() and (absent.dice == 1).all()
    nnunet_3d = read_tsv(results / "nnunet_volumes/et/brats2019/3d_fullres/seed2024/metrics.tsv")
    split = read_tsv(results / "splits/brats2019.tsv").set_index("case_id").split
    test_cases = split.index[split == "test"]
    assert sorted(nnunet_3d.case_id) == sorted(test_cases)
    labels = results / "nnunet_volumes/et/brats2019/raw/Dataset502_BraTSvolumes/labelsTr"
    learning = [case for case in absent.index if split[case] != "test"]  # nnU-Net learns that none can be there
    assert learning and all(not np.asanyarray(nib.load(labels / f"{case}.nii.gz").dataobj).any() for case in learning)
    rows = table.set_index("row")
    assert rows.loc["MedSAM-2 zero-shot, 3D", "n"] == len(test_cases)
    assert rows.loc["MedSAM-2 zero-shot, 3D, region present", "n"] == (nnunet_3d.area_true > 0).sum()
    # The volume protocol's other methods (2D models trained on brats2019's own key slices) on every
    # test case too, the region-absent ones scored by BraTS's conventions.
    for run in ("nnunet_volumes/et/brats2019/2d/seed2024", "sam/et/brats2019/seed2024/volumes/box_per_slice",
                "sam/et/brats2019/seed2024/volumes/yolo_per_slice", "medsam2/et/brats2019/seed2024/volumes/yolo_key_slice"):
        metrics = read_tsv(results / run / "metrics.tsv").set_index("case_id")
        assert sorted(metrics.index) == sorted(test_cases), run
        region_absent = metrics[metrics.area_true == 0]
        assert len(region_absent), run
        assert region_absent.dice.isin([0.0, 1.0]).all() and region_absent.hd95.isin([0.0, WORST_HD95_MM]).all(), run
        if run.endswith("box_per_slice"):  # the oracle has no box without the region: an empty mask, Dice 1
            assert (region_absent.area_pred == 0).all() and (region_absent.dice == 1).all()
    assert rows.loc["LoRA-SAM + GT box on every slice, region present", "n"] == (nnunet_3d.area_true > 0).sum()
    assert (read_tsv(results / "sam/et/brats2019/key_slice/seed2024/metrics.tsv").region == "et").all()
    assert (results / "figures/et/distributions.png").is_file()
    assert not (results / "slices/brats2024/wt").exists()


def test_the_automatic_rules_take_no_ground_truth(short_demo_run, short_demo_config):
    """Read from the job graph: the jobs that make the automatic rows (YOLO on every test slice, then
    LoRA-SAM on every slice and MedSAM-2 from its boxes) take no segmentation file, no slice dataset
    (which holds masks) and no case folder as input."""
    result = run_snakemake(short_demo_run, "-n", "--forcerun", "detect_volumes", *short_demo_config)
    assert result.returncode == 0, result.stdout
    segs = set(read_tsv(short_demo_run / "results/cases/brats2019.tsv").seg)
    for rule in ("detect_volumes", "predict_sam_volumes", "medsam2_automatic"):
        jobs = re.findall(rf"^rule {rule}:\n((?:    .*\n)+)", result.stdout, flags=re.MULTILINE)
        assert len(jobs) == len(SHORT_DEMO["replicates"]), rule  # one per replicate; the oracle's jobs do not rerun
        for block in jobs:
            assert rule != "predict_sam_volumes" or "prompt=yolo_per_slice" in block
            inputs = re.search(r"input: (.*)", block).group(1).split(", ")
            assert "results/splits/brats2019.tsv" in inputs
            assert any(path.endswith(("best.pt", "volume_detections.tsv")) for path in inputs), inputs
            assert not segs & set(inputs) and not any(
                path.startswith(("results/slices/", "results/demo/raw/")) or "seg" in Path(path).name
                for path in inputs
            ), inputs


def markdown_table_rows(text: str, header_start: str) -> list[str]:
    """The rows of the first Markdown table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_readme_shows_the_table_the_demo_prints(demo_run):
    printed = (demo_run / "results/comparison.md").read_text()
    readme = (REPO / "README.md").read_text().split("## What the demo gives", 1)[1]
    assert markdown_table_rows(readme, "| method |") == markdown_table_rows(printed, "| method |")
    assert markdown_table_rows(readme, "| YOLO detector |") == markdown_table_rows(printed, "| YOLO detector |")
