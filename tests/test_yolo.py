"""YOLO: label round trip, no-detection policies, offline training and prediction, boxes into SAM."""

from __future__ import annotations

import shutil
import socket
import traceback

import numpy as np
import pandas as pd
import pytest
import torch

from sambrats import sam, yolo
from sambrats.outputs import read_tsv, write_tsv
from sambrats.slices import load_split
from sambrats.presets import SAM_STANDINS

from conftest import write_samples

CPU = torch.device("cpu")


def label_to_box(label, width: int, height: int) -> tuple[int, int, int, int]:
    """A normalised YOLO label read back as an inclusive pixel box, through the corners a detector
    predicts (the inverse of yolo.box_to_label)."""
    cx, cy, w, h = label
    return yolo.xyxy_to_box(((cx - w / 2) * width, (cy - h / 2) * height,
                             (cx + w / 2) * width, (cy + h / 2) * height), width, height)


@pytest.mark.parametrize("seed", range(5))
def test_label_round_trip_gives_the_pixel_box_back(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        width, height = rng.integers(8, 300, 2)
        x0, x1 = sorted(rng.integers(0, width, 2))
        y0, y1 = sorted(rng.integers(0, height, 2))
        label = yolo.box_to_label((x0, y0, x1, y1), width, height)
        assert all(0 < v <= 1 for v in label)
        assert label_to_box(label, width, height) == (x0, y0, x1, y1)


def test_exported_labels_read_back_as_the_original_boxes(tmp_path):
    write_samples(tmp_path / "slices", 8)
    yolo.export_dataset(tmp_path / "slices", tmp_path / "ds")
    index = read_tsv(tmp_path / "slices/index.tsv")
    for row in index.itertuples():
        assert (tmp_path / "ds/images" / row.split / f"{row.case_id}.png").is_file()
        cls, *label = (tmp_path / "ds/labels" / row.split / f"{row.case_id}.txt").read_text().split()
        assert cls == "0"
        assert label_to_box([float(v) for v in label], 48, 48) == (row.x0, row.y0, row.x1, row.y1)
    assert "path:" not in (tmp_path / "ds/data.yaml").read_text()


def test_background_slices_get_empty_label_files_and_are_counted(tmp_path):
    """A slice without the region is a background image: its PNG with an empty label file, as
    ultralytics expects; the detection metrics count each split's images and background images."""
    write_samples(tmp_path / "slices", 6)
    index = read_tsv(tmp_path / "slices/index.tsv")
    background = index.iloc[[0, 4]].assign(area=0, x0="", y0="", x1="", y1="")  # a val and a train slice
    background["sample"] = background.case_id + "_k009"
    for row in background.itertuples():
        shutil.copy2(tmp_path / "slices" / f"{row.case_id}.png", tmp_path / "slices" / f"{row.sample}.png")
    write_tsv(pd.concat([index, background]), tmp_path / "slices/index.tsv")
    yolo.export_dataset(tmp_path / "slices", tmp_path / "ds")
    assert (tmp_path / "ds/labels/val/case00_k009.txt").read_text() == ""
    assert (tmp_path / "ds/images/train/case04_k009.png").is_file()
    assert (tmp_path / "ds/labels/train/case04.txt").read_text().startswith("0 ")
    assert yolo.split_images(tmp_path / "ds/data.yaml", "val") == (3, 1)
    assert yolo.split_images(tmp_path / "ds/data.yaml", "train") == (3, 1)
    assert yolo.split_images(tmp_path / "ds/data.yaml", "test") == (2, 0)


@pytest.mark.parametrize("model, name", [("resources/yolov8m.pt", "YOLOv8m"), ("yolov8n.yaml", "YOLOv8n"),
                                         ("/w/yolo11s.pt", "YOLO11s"), ("detector.pt", "detector")])
def test_detector_is_named_from_the_configured_model(model, name):
    assert yolo.detector_name(model) == name


def test_box_iou_of_inclusive_pixel_boxes():
    assert yolo.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert yolo.box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert yolo.box_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


@pytest.mark.parametrize("policy", yolo.NO_DETECTION_POLICIES)
def test_no_detection_policy_is_recorded_and_applied(policy):
    row = yolo.choose_box("c", [], (3, 3, 6, 6), policy, 20, 10)
    assert row["fallback"] == policy
    action, box = yolo.yolo_prompt(row)
    if policy == "full_image_box":
        assert (action, box) == ("box", (0, 0, 19, 9))
        assert row["box_iou"] == pytest.approx(16 / 200)
    else:
        assert (action, box) == (policy, None)
    detected = yolo.choose_box("c", [((1, 1, 5, 5), 0.4), ((3, 3, 6, 6), 0.9)], (3, 3, 6, 6), policy, 20, 10)
    assert detected["fallback"] == "" and detected["box_iou"] == 1.0
    assert yolo.yolo_prompt(detected) == ("box", (3, 3, 6, 6))


@pytest.fixture
def no_network(monkeypatch):
    """Every outgoing connection or name lookup raises and is recorded (even if the caller
    swallows the error); the test fails if any was attempted."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(("".join(traceback.format_stack(limit=12)), args))
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    yield
    assert attempts == [], f"network access attempted: {attempts}"


def test_training_validation_and_prediction_make_no_network_access(tmp_path, no_network):
    write_samples(tmp_path / "slices", 10)
    yolo.export_dataset(tmp_path / "slices", tmp_path / "ds")
    settings = yolo.YoloSettings(epochs=2, imgsz=64, batch=4, patience=10, workers=0, seed=0)
    config_dir = tmp_path / "ultralytics"
    yolo.train_yolo(tmp_path / "ds/data.yaml", "yolov8n.yaml", tmp_path / "runs/train", tmp_path / "best.pt",
                    tmp_path / "results.csv", settings, "cpu", config_dir)
    assert (tmp_path / "best.pt").stat().st_size > 0
    assert (tmp_path / "runs/train/weights/last.pt").is_file()  # ultralytics' own run folder is kept
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2
    metrics = yolo.detection_metrics(tmp_path / "best.pt", tmp_path / "ds/data.yaml", 64, "cpu", config_dir, tmp_path / "runs")
    assert metrics.split.tolist() == ["val", "test"] and metrics.images.tolist() == [2, 2]
    assert metrics[["map50", "map50_95", "precision", "recall"]].apply(lambda c: c.between(0, 1)).all().all()
    chosen, every = yolo.predict_boxes(tmp_path / "best.pt", tmp_path / "slices", 64, 0.0, "full_image_box", "cpu", config_dir)
    assert chosen.columns.tolist() == yolo.BOX_COLUMNS
    assert sorted(chosen.case_id) == ["case02", "case03"]
    assert set(chosen.fallback) <= {"", "full_image_box"}
    assert not (tmp_path / "runs" / "detect").exists()  # nothing outside the given run folder
    assert (tmp_path / "runs/train/results.png").stat().st_size > 0  # plots work offline


def test_missing_pt_weights_fail_with_a_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="no download on compute nodes"):
        yolo.train_yolo(tmp_path / "d.yaml", str(tmp_path / "yolov8m.pt"), tmp_path / "run", tmp_path / "b.pt",
                        tmp_path / "r.csv", yolo.YoloSettings(1, 64, 4, 1, 0, 0), "cpu", tmp_path / "cfg")


def test_yolo_boxes_feed_sam_with_each_policy(tmp_path):
    write_samples(tmp_path / "slices", 10)
    base = tmp_path / "base"
    torch.manual_seed(0)
    from transformers import SamModel

    SamModel(sam.tiny_sam_config(**SAM_STANDINS["tiny-sam-256"])).save_pretrained(base)
    sam.sam_processor(256).save_pretrained(base)
    peft_model = sam.add_lora(SamModel.from_pretrained(base), 4, 8, 0.0, ["qkv"])
    peft_model.save_pretrained(tmp_path / "adapter")
    boxes = pd.DataFrame([
        {"case_id": "case02", "x0": 10, "y0": 12, "x1": 30, "y1": 33, "confidence": 0.9, "box_iou": 0.5, "fallback": ""},
        {"case_id": "case03", "x0": -1, "y0": -1, "x1": -1, "y1": -1, "confidence": 0.0, "box_iou": 0.0, "fallback": "empty_mask"},
    ])
    write_tsv(boxes, tmp_path / "boxes.tsv")
    sam.write_predictions(base, tmp_path / "adapter", tmp_path / "slices", tmp_path / "pred", tmp_path / "m.tsv",
                          "brats2024", "wt", [0], seed=0, tolerance_mm=2.0, replicate=0, device_name="cpu",
                          yolo_boxes=tmp_path / "boxes.tsv")
    table = read_tsv(tmp_path / "m.tsv")
    rows = table[table.prompt == "yolo_box"].set_index("case_id")
    assert rows.loc["case02", "prompt_box"] == "10,12,30,33" and rows.loc["case02", "fallback"] == ""
    assert rows.loc["case03", "fallback"] == "empty_mask" and rows.loc["case03", "area_pred"] == 0
    # The yolo_box mask is what SAM gives for that box.
    model, processor = sam.load_base(base, CPU)
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(tmp_path / "adapter"))
    sample = next(s for s in load_split(tmp_path / "slices", "test") if s.case_id == "case02")
    expected = sam.predict_prompts(model, processor, sample.image, {"yolo": (10, 12, 30, 33)}, CPU)["yolo"]
    with np.load(tmp_path / "pred/yolo_box/case02.npz") as saved:
        np.testing.assert_array_equal(saved["mask"], expected)
