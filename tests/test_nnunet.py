"""nnU-Net baseline: raw dataset round trip, the split file, plan/train/resume/predict for real."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from sambrats import nnunet
from sambrats.brats import discover, write_case_tables
from sambrats.metrics import METRIC_COLUMNS
from sambrats.outputs import read_tsv, write_tsv
from sambrats.processes import guarded_command
from sambrats.slices import load_sample, slice_image, write_slice_dataset
from sambrats.splits import write_split
from sambrats.synth import GLI, LEGACY, write_cohort

DATASET_ID = 777
NAME = nnunet.dataset_name(DATASET_ID, "Test")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small synthetic study through the slice stage and the nnU-Net raw dataset."""
    tmp = tmp_path_factory.mktemp("nnunet")
    write_cohort(tmp / "raw", GLI, 10, (48, 48, 24), seed=4)
    write_case_tables(tmp / "raw", "gli", "brats2024", tmp / "cases.tsv", tmp / "rejected.tsv")
    write_split(tmp / "cases.tsv", tmp / "splits.tsv", {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    write_slice_dataset(tmp / "cases.tsv", tmp / "splits.tsv", tmp / "slices", "gli", "t2f", "wt", (0.5, 99.5))
    root = tmp / "nnunet"
    nnunet.write_raw_dataset(tmp / "slices", tmp / "cases.tsv", root / "raw" / NAME, "gli", ["flair"], (0.5, 99.5))
    return tmp, root


def test_raw_dataset_round_trip_gives_the_slices_back(prepared):
    tmp, root = prepared
    raw = root / "raw" / NAME
    index = read_tsv(tmp / "slices/index.tsv")
    for row in index.itertuples():
        sample = load_sample(tmp / "slices", row.case_id)
        folder = "imagesTs" if row.split == "test" else "imagesTr"
        np.testing.assert_array_equal(nnunet.from_nifti(raw / folder / f"{row.case_id}_0000.nii.gz"), sample.image)
        label = raw / "labelsTr" / f"{row.case_id}.nii.gz"
        if row.split == "test":
            assert not label.exists()
        else:
            np.testing.assert_array_equal(nnunet.from_nifti(label), sample.mask)
    description = json.loads((raw / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "t2f"}
    assert description["numTraining"] == int((index.split != "test").sum())


def test_all_four_contrasts_as_channels(prepared, tmp_path):
    tmp, _ = prepared
    nnunet.write_raw_dataset(tmp / "slices", tmp / "cases.tsv", tmp_path / "four", "gli",
                             ["t1n", "t1c", "t2w", "t2f"], (0.5, 99.5))
    row = read_tsv(tmp / "slices/index.tsv").iloc[0]
    case = read_tsv(tmp / "cases.tsv").set_index("case_id").loc[row.case_id]
    folder = "imagesTs" if row.split == "test" else "imagesTr"
    for number, name in enumerate(["t1n", "t1c", "t2w", "t2f"]):
        image = nnunet.from_nifti(tmp_path / "four" / folder / f"{row.case_id}_{number:04d}.nii.gz")
        np.testing.assert_array_equal(image, slice_image(case[name], row.slice_index, (0.5, 99.5)))


def test_split_file_fold_0_is_our_train_and_val_split_of_the_cases_with_a_slice(prepared, tmp_path):
    tmp, _ = prepared
    index = read_tsv(tmp / "slices/index.tsv")
    without_slice = index.case_id[index.split == "train"].iloc[0]  # as if its region were empty
    write_tsv(index[index.case_id != without_slice], tmp_path / "index.tsv")
    nnunet.write_split_file(tmp_path / "index.tsv", tmp_path / "splits_final.json")
    (fold,) = json.loads((tmp_path / "splits_final.json").read_text())
    split = read_tsv(tmp / "splits.tsv")
    assert fold["train"] == sorted(set(split.case_id[split.split == "train"]) - {without_slice})
    assert fold["val"] == sorted(split.case_id[split.split == "val"])
    assert not set(fold["train"]) & set(split.case_id[split.split == "test"])


def test_plan_train_resume_and_predict(prepared, caplog):
    caplog.set_level(logging.INFO)
    tmp, root = prepared
    nnunet.plan_and_preprocess(root, DATASET_ID, tmp / "slices/index.tsv", processes=1)
    (fold,) = json.loads((root / "preprocessed" / NAME / "splits_final.json").read_text())
    split = read_tsv(tmp / "splits.tsv")
    assert fold["val"] == sorted(split.case_id[split.split == "val"])
    # the fingerprint's foreground intensity statistics are the training cases' own, each case drawn
    # as often as the others (how many draws, FINGERPRINT_FOREGROUND_VOXELS, the fingerprint does not show)
    raw = root / "raw" / NAME
    images = sorted((raw / "imagesTr").glob("*_0000.nii.gz"))
    labels = [raw / "labelsTr" / image.name.replace("_0000", "") for image in images]
    per_case = [nib.load(image).get_fdata()[nib.load(label).get_fdata() > 0] for image, label in zip(images, labels)]
    stats = json.loads((root / "preprocessed" / NAME / "dataset_fingerprint.json").read_text())
    stats = stats["foreground_intensity_properties_per_channel"]["0"]
    foreground = np.concatenate(per_case)
    assert stats["min"] == foreground.min() and stats["max"] == foreground.max()
    assert abs(stats["mean"] - np.mean([case.mean() for case in per_case])) < 0.01 * foreground.std()

    # Kill a training run once nnU-Net has written checkpoint_latest.pth, then rerun it.
    args = [str(DATASET_ID), "5", "2", "1", "cpu", "0", nnunet.CONFIGURATION]
    env = nnunet.environment(root, 1, seed=0)
    first = subprocess.Popen(guarded_command("sambrats.nnunet:main", "train", *args), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fold_dir = Path(nnunet.fold_folder(root, NAME, 0))
    assert fold_dir == root / "model" / "seed0" / NAME / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0"  # per replicate
    deadline = time.time() + 600
    while time.time() < deadline and not zipfile.is_zipfile(fold_dir / "checkpoint_latest.pth"):
        time.sleep(0.05)  # until torch's zip archive is whole (its central directory, written last, is there)
    first.kill()
    first.wait()
    assert not (fold_dir / "checkpoint_final.pth").exists(), "the run was not interrupted"
    assert not (fold_dir / "progress.png").exists()  # drawn after the last epoch only
    nnunet.train(root, NAME, DATASET_ID, 5, 2, 1, "cpu", seed=0, history_path=tmp / "history.tsv", processes=1)
    assert (fold_dir / "checkpoint_final.pth").is_file() and (fold_dir / "progress.png").is_file()
    assert read_tsv(tmp / "history.tsv").epoch.tolist() == [0, 1, 2, 3, 4]  # both logs, every epoch once
    logs = sorted(fold_dir.glob("training_log_*.txt"))
    assert len(logs) == 2
    epochs_of_rerun = [int(n) for n in re.findall(r": Epoch (\d+)\s*$", logs[1].read_text(), re.MULTILINE)]
    assert epochs_of_rerun and epochs_of_rerun[0] > 0  # continued, not restarted
    assert epochs_of_rerun == list(range(epochs_of_rerun[0], 5))

    nnunet.write_predictions(root, DATASET_ID, root / "raw" / NAME, tmp / "slices", tmp / "pred",
                             tmp / "metrics.tsv", "brats2024", "wt", "cpu", 2.0, seed=0, processes=1)
    table = read_tsv(tmp / "metrics.tsv")
    assert table.columns.tolist() == METRIC_COLUMNS + ["seed"] and (table.seed == 0).all()
    assert sorted(table.case_id) == sorted(split.case_id[split.split == "test"])
    assert (table.method == "nnunet").all() and table.dice.between(0, 1).all()
    with np.load(tmp / "pred" / f"{table.case_id.iloc[0]}.npz") as saved:
        assert saved["mask"].shape == (48, 48)
    assert "Running in non-multiprocessing mode" in caplog.text  # one process: nothing spawned


def test_training_with_augmentation_workers_is_reproducible_to_the_bit(prepared, tmp_path):
    """Two trainings with the same seed and two augmentation workers give the same weights; another seed does not.
    The network is narrowed to 8 features in its first stage (the demo's), and the trainer builds it so."""
    tmp, _ = prepared
    planned = tmp_path / "planned"  # planned and preprocessed once: the trainings are what is compared
    nnunet.write_raw_dataset(tmp / "slices", tmp / "cases.tsv", planned / "raw" / NAME, "gli", ["flair"], (0.5, 99.5))
    nnunet.plan_and_preprocess(planned, DATASET_ID, tmp / "slices/index.tsv", processes=2, base_features=8)
    weights = {}
    for name, seed in (("first", 5), ("again", 5), ("other", 6)):
        root = tmp_path / name
        shutil.copytree(planned, root, symlinks=True)
        nnunet.train(root, NAME, DATASET_ID, 2, 3, 1, "cpu", seed=seed, history_path=root / "history.tsv",
                     processes=2)
        checkpoint = torch.load(nnunet.checkpoint_path(root, NAME, seed), map_location="cpu", weights_only=False)
        weights[name] = checkpoint["network_weights"]
    assert all(torch.equal(weights["first"][key], weights["again"][key]) for key in weights["first"])
    assert not all(torch.equal(weights["first"][key], weights["other"][key]) for key in weights["first"])
    first_convolution = next(value for key, value in weights["first"].items() if key.endswith("conv.weight"))
    assert first_convolution.shape[:2] == (8, 1)  # 8 features from the one input channel


def test_narrowing_scales_every_stage_of_one_configuration(tmp_path):
    plans = {"configurations": {name: {"architecture": {"arch_kwargs": {"features_per_stage": [32, 64, 128, 256, 512, 512]}}}
                                for name in ("2d", "3d_fullres")}}
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(plans))
    nnunet.narrow_network(path, "2d", 8)
    narrowed = json.loads(path.read_text())["configurations"]
    assert narrowed["2d"]["architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 64, 128, 128]
    assert narrowed["3d_fullres"] == plans["configurations"]["3d_fullres"]


def nnunet_epoch(number, train_loss, val_loss, dice):
    return (f"t: Epoch {number}\nt: train_loss {train_loss}\nt: val_loss {val_loss}\n"
            f"t: Pseudo dice [np.float32({dice})]\nt: Epoch time: 1.0 s\n")


def test_nnunet_curves_from_a_resumed_training(tmp_path):
    first, second = tmp_path / "training_log_1.txt", tmp_path / "training_log_2.txt"
    # The first run is killed during epoch 2; the second continues with epoch 2.
    first.write_text(nnunet_epoch(0, 0.5, 0.4, 0.7) + nnunet_epoch(1, 0.3, 0.2, 0.8) + "t: Epoch 2\nt: train_loss 0.1\n")
    second.write_text(nnunet_epoch(2, 0.2, 0.1, 0.9))
    curves = nnunet.training_history([first, second])
    assert curves.epoch.tolist() == [0, 1, 2]
    assert curves.pseudo_dice.tolist() == [0.7, 0.8, 0.9]
    assert curves.train_loss.tolist() == [0.5, 0.3, 0.2]


def test_raw_volumes_link_the_images_and_label_the_region_empty_where_absent(tmp_path):
    write_cohort(tmp_path / "raw", LEGACY, 4, (24, 24, 12), seed=3)
    cases, _ = discover(tmp_path / "raw", LEGACY, "brats2019")
    write_tsv(cases, tmp_path / "cases.tsv")
    split = ["train", "train", "val", "test"]
    write_tsv(pd.DataFrame({"case_id": cases.case_id, "split": split}), tmp_path / "index.tsv")
    out = tmp_path / "Dataset502_Test"
    nnunet.write_raw_volumes(tmp_path / "cases.tsv", tmp_path / "index.tsv", out, "legacy", ["t1ce", "flair"], "tc")
    description = json.loads((out / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "t1ce", "1": "flair"} and description["numTraining"] == 3
    assert description["labels"] == {"background": 0, "tc": 1}
    test_case, train_case = cases.iloc[3], cases.iloc[0]
    assert (out / "imagesTs" / f"{test_case.case_id}_0001.nii.gz").resolve() == Path(test_case.flair).resolve()
    assert not (out / "labelsTr" / f"{test_case.case_id}.nii.gz").exists()  # no test label for nnU-Net
    label = nib.load(out / "labelsTr" / f"{train_case.case_id}.nii.gz")
    seg = nib.load(train_case.seg)
    np.testing.assert_array_equal(label.affine, seg.affine)
    np.testing.assert_array_equal(np.asanyarray(label.dataobj), np.isin(np.asanyarray(seg.dataobj), [1, 4]))
    assert label.get_data_dtype() == np.uint8
    absent = cases.iloc[1]  # a training case without the region: in the dataset, its label empty
    seg = nib.load(absent.seg)
    nib.save(nib.Nifti1Image(np.where(np.isin(np.asanyarray(seg.dataobj), [1, 4]), 2, seg.dataobj).astype(np.uint8),
                             seg.affine, seg.header), absent.seg)
    nnunet.write_raw_volumes(tmp_path / "cases.tsv", tmp_path / "index.tsv", out, "legacy", ["t1ce", "flair"], "tc")
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 3
    assert not np.asanyarray(nib.load(out / "labelsTr" / f"{absent.case_id}.nii.gz").dataobj).any()


def test_a_rerun_of_a_finished_or_replanned_training_starts_afresh(tmp_path):
    """Only an interrupted training of the same plans is continued (Snakemake's rerun of a finished
    one removed checkpoint_final.pth; nnU-Net alone would continue from checkpoint_best.pth)."""
    fold = tmp_path / "fold_0"
    fold.mkdir()
    plans = {"configurations": {"2d": {"patch_size": [64, 64]}}}
    torch.save({"init_args": {"plans": plans}, "logging": {"ema_fg_dice": [np.float32(0.5)]}}, fold / "checkpoint_latest.pth")
    nnunet.keep_only_an_interrupted_training(fold, plans)
    assert (fold / "checkpoint_latest.pth").is_file()  # continued
    nnunet.keep_only_an_interrupted_training(fold, {"configurations": {"2d": {"patch_size": [32, 32]}}})
    assert fold.is_dir() and not any(fold.iterdir())  # other plans: afresh
    torch.save({"init_args": {"plans": plans}}, fold / "checkpoint_best.pth")
    (fold / "training_log_2026_1_1_00_00_00.txt").write_text("Epoch 0\n")
    nnunet.keep_only_an_interrupted_training(fold, plans)
    assert not any(fold.iterdir())  # finished earlier: afresh, its logs gone with it


def test_a_checkpoint_cut_short_by_a_kill_starts_the_training_afresh(tmp_path, caplog):
    """A training killed while nnU-Net wrote checkpoint_latest.pth (a job's time limit) leaves it cut
    short: the rerun starts afresh and says why, instead of failing in torch.load."""
    caplog.set_level(logging.INFO)
    fold = tmp_path / "fold_0"
    fold.mkdir()
    plans = {"configurations": {"2d": {"patch_size": [64, 64]}}}
    latest = fold / "checkpoint_latest.pth"
    torch.save({"init_args": {"plans": plans}, "network_weights": {"w": torch.zeros(1000)}}, latest)
    latest.write_bytes(latest.read_bytes()[:-100])  # the archive's central directory not yet written
    nnunet.keep_only_an_interrupted_training(fold, plans)
    assert fold.is_dir() and not any(fold.iterdir())
    assert "was cut short while it was written" in caplog.text
