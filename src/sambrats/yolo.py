"""YOLO tumour detector (ultralytics): dataset export, offline training, metrics, boxes for SAM.

Box conventions: slice boxes are inclusive pixel boxes ``x0, y0, x1, y1`` (see ``slices``); a
pixel box covers the continuous interval ``[x0, x1 + 1)``, which is what YOLO labels describe
(normalised centre and size) and what predicted ``xyxy`` boxes are rounded back from.

Offline: every function that touches ultralytics first calls :func:`offline_ultralytics`, which
sets ``YOLO_OFFLINE`` and a private ``YOLO_CONFIG_DIR`` before ultralytics is imported, turns
telemetry off and puts local fonts where ultralytics would download them; on CUDA, training uses
``amp='bf16'`` (ultralytics' fp16 AMP check would download a model). Weights are only ever read
from local files.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .outputs import read_tsv, staged_directory, staged_file, write_tsv
from .seeding import seed_everything

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NO_DETECTION_POLICIES = ("no_prompt", "full_image_box", "empty_mask")
BOX_COLUMNS = ["case_id", "x0", "y0", "x1", "y1", "confidence", "box_iou", "fallback"]
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
METRIC_NAMES = {"map50": "box.map50", "map50_95": "box.map", "precision": "box.mp", "recall": "box.mr"}


def detector_name(model: str) -> str:
    """The detector as a table names it, from the configured model: ``resources/yolov8m.pt`` and
    ``yolov8m.yaml`` give "YOLOv8m"."""
    stem = Path(model).stem
    return "YOLO" + stem[4:] if stem.lower().startswith("yolo") else stem


def offline_ultralytics(config_dir: str | Path) -> None:
    """Make ultralytics work without network; call before the first ultralytics import."""
    config_dir = Path(config_dir).resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    from matplotlib import get_data_path
    from ultralytics import settings
    from ultralytics.utils import USER_CONFIG_DIR

    settings.update({"sync": False, "runs_dir": str(config_dir / "runs")})
    # Ultralytics looks for Arial fonts (for plot labels) when it checks a dataset and downloads
    # them when missing; matplotlib's bundled DejaVu Sans stands in under the names it looks for.
    for name in FONT_NAMES:
        if not (USER_CONFIG_DIR / name).exists():
            shutil.copy2(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", USER_CONFIG_DIR / name)


def box_to_label(box, width: int, height: int) -> tuple[float, float, float, float]:
    """Inclusive pixel box -> normalised (centre x, centre y, width, height)."""
    x0, y0, x1, y1 = box
    return ((x0 + x1 + 1) / 2 / width, (y0 + y1 + 1) / 2 / height,
            (x1 - x0 + 1) / width, (y1 - y0 + 1) / height)


def xyxy_to_box(xyxy, width: int, height: int) -> tuple[int, int, int, int]:
    """Continuous corner coordinates -> inclusive pixel box inside the image."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    left = int(np.clip(round(x0), 0, width - 1))
    top = int(np.clip(round(y0), 0, height - 1))
    right = int(np.clip(round(x1) - 1, left, width - 1))
    bottom = int(np.clip(round(y1) - 1, top, height - 1))
    return left, top, right, bottom


def box_iou(a, b) -> float:
    """IoU of two inclusive pixel boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(width, 0) * max(height, 0)
    area = lambda box: (box[2] - box[0] + 1) * (box[3] - box[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def export_dataset(slices_dir, out_dir) -> None:
    """Ultralytics layout: images/{split}/{sample}.png, labels/{split}/{sample}.txt (an empty label
    file for a slice without the region: a background image, as ultralytics expects), data.yaml."""
    slices_dir = Path(slices_dir)
    index = read_tsv(slices_dir / "index.tsv")
    with staged_directory(out_dir) as folder:
        for split in SPLITS:
            (folder / "images" / split).mkdir(parents=True)
            (folder / "labels" / split).mkdir(parents=True)
        for row in index.itertuples():
            png = slices_dir / f"{row.sample}.png"
            shutil.copy2(png, folder / "images" / row.split / png.name)
            label = ""
            if row.area > 0:
                height, width = _png_shape(png)
                cx, cy, w, h = box_to_label(tuple(int(v) for v in (row.x0, row.y0, row.x1, row.y1)), width, height)
                label = f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
            (folder / "labels" / row.split / f"{row.sample}.txt").write_text(label)
        # No `path` key: ultralytics then resolves the splits relative to this file's folder.
        data = {"train": "images/train", "val": "images/val", "test": "images/test", "names": {0: "tumor"}}
        (folder / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    counts = index.assign(background=index.area == 0).groupby("split").background.agg(["size", "sum"])
    log.info("YOLO dataset (images, background images): %s",
             {split: (int(row["size"]), int(row["sum"])) for split, row in counts.iterrows()})


def split_images(data_yaml, split: str) -> tuple[int, int]:
    """(images, background images) of one split of an exported dataset (from its label files)."""
    labels = sorted((Path(data_yaml).parent / "labels" / split).glob("*.txt"))
    return len(labels), sum(1 for label in labels if not label.read_text().strip())


def _png_shape(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


@dataclass(frozen=True)
class YoloSettings:
    """Ultralytics training settings (config ``yolo``, seeded by the master seed)."""

    epochs: int
    imgsz: int
    batch: int
    patience: int
    workers: int
    seed: int


def device_argument(device_name: str) -> str:
    """Ultralytics' device string for the config's device (``auto`` resolved)."""
    from .devices import resolve_device  # torch only in jobs: the Snakefile imports this module

    return "0" if resolve_device(device_name).type == "cuda" else "cpu"


def train_yolo(data_yaml, model_spec: str, run_dir, weights_out, results_out, settings: YoloSettings,
               device_name: str, config_dir) -> None:
    """Train with ultralytics into ``run_dir`` (all of its run files kept) and publish best.pt."""
    offline_ultralytics(config_dir)
    from ultralytics import YOLO

    spec = Path(model_spec)
    if spec.suffix == ".pt" and not spec.is_file():
        raise FileNotFoundError(
            f"YOLO weights {model_spec} not found: copy yolov8m.pt there (no download on compute nodes)"
        )
    run_dir = Path(run_dir).resolve()
    seed_everything(settings.seed)
    model = YOLO(model_spec)
    device = device_argument(device_name)
    model.train(
        data=str(Path(data_yaml).resolve()),
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        seed=settings.seed,
        patience=settings.patience,
        workers=settings.workers,
        device=device,
        amp="bf16" if device != "cpu" else False,
        plots=True,
        deterministic=True,
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
        pretrained=spec.suffix == ".pt",
        verbose=False,
    )
    best = run_dir / "weights" / "best.pt"
    with staged_file(weights_out) as tmp:
        shutil.copy2(best, tmp)
    with staged_file(results_out) as tmp:
        shutil.copy2(run_dir / "results.csv", tmp)


def detection_metrics(weights, data_yaml, imgsz: int, device_name: str, config_dir, run_dir) -> pd.DataFrame:
    """mAP50, mAP50-95, precision and recall on the val and test splits (ultralytics' validator; a
    background image counts its detections as false positives), with each split's image counts."""
    offline_ultralytics(config_dir)
    from ultralytics import YOLO

    model = YOLO(str(weights))
    rows = []
    for split in ("val", "test"):
        result = model.val(data=str(Path(data_yaml).resolve()), split=split, imgsz=imgsz,
                           device=device_argument(device_name), plots=False, verbose=False,
                           project=str(Path(run_dir).resolve()), name=f"val_{split}", exist_ok=True)
        images, background = split_images(data_yaml, split)
        row = {"split": split, "images": images, "background_images": background}
        for name, attribute in METRIC_NAMES.items():
            value = result
            for part in attribute.split("."):
                value = getattr(value, part)
            row[name] = float(value)
        rows.append(row)
        log.info("YOLO %s: mAP50 %.4f, mAP50-95 %.4f", split, row["map50"], row["map50_95"])
    return pd.DataFrame(rows)


def predict_boxes(weights, slices_dir, imgsz: int, conf: float, policy: str, device_name: str, config_dir):
    """Per test slice the most confident box above ``conf`` (chosen table) and every box."""
    if policy not in NO_DETECTION_POLICIES:
        raise ValueError(f"unknown no-detection policy {policy!r}; choose one of {NO_DETECTION_POLICIES}")
    model = load_detector(weights, config_dir)
    device = device_argument(device_name)
    index = read_tsv(Path(slices_dir) / "index.tsv")
    test = index[index.split == "test"]
    chosen, every = [], []
    for row in test.itertuples():
        png = Path(slices_dir) / f"{row.sample}.png"
        height, width = _png_shape(png)
        boxes = detect(model, png, imgsz, conf, device)
        truth = (row.x0, row.y0, row.x1, row.y1)
        for rank, (box, score) in enumerate(boxes):
            every.append({"case_id": row.case_id, "rank": rank, "x0": box[0], "y0": box[1], "x1": box[2],
                          "y1": box[3], "confidence": score, "box_iou": box_iou(box, truth)})
        chosen.append(choose_box(row.case_id, boxes, truth, policy, width, height))
    n_fallback = sum(1 for row in chosen if row["fallback"])
    log.info("YOLO boxes: %d test slices, %d without detection (policy %s)", len(chosen), n_fallback, policy)
    every_columns = ["case_id", "rank", "x0", "y0", "x1", "y1", "confidence", "box_iou"]
    return pd.DataFrame(chosen, columns=BOX_COLUMNS), pd.DataFrame(every, columns=every_columns)


def load_detector(weights, config_dir):
    """The trained detector, ultralytics offline."""
    offline_ultralytics(config_dir)
    from ultralytics import YOLO

    return YOLO(str(weights))


def detect(model, image, imgsz: int, conf: float, device: str) -> list[tuple[tuple[int, int, int, int], float]]:
    """Detections above ``conf`` of one slice, most confident first: (inclusive pixel box, confidence).
    ``image``: a slice PNG, or the slice as 8-bit RGB pixels [H, W, 3] (what its PNG holds)."""
    if isinstance(image, np.ndarray):
        height, width = image.shape[:2]
        source = np.ascontiguousarray(image[:, :, ::-1])  # ultralytics takes arrays as OpenCV's BGR
    else:
        height, width = _png_shape(Path(image))
        source = str(image)
    result = model.predict(source, imgsz=imgsz, conf=conf, device=device, verbose=False)[0]
    boxes = [(xyxy_to_box(xyxy, width, height), float(score))
             for xyxy, score in zip(result.boxes.xyxy.cpu().numpy(), result.boxes.conf.cpu().numpy())]
    return sorted(boxes, key=lambda item: -item[1])


def choose_box(case_id: str, boxes, truth, policy: str, width: int, height: int) -> dict:
    """The most confident detection, or the no-detection policy's stand-in (recorded in `fallback`)."""
    if boxes:
        box, score = max(boxes, key=lambda item: item[1])
        return {"case_id": case_id, **dict(zip("x0 y0 x1 y1".split(), box)), "confidence": score,
                "box_iou": box_iou(box, truth), "fallback": ""}
    box = (0, 0, width - 1, height - 1) if policy == "full_image_box" else (-1, -1, -1, -1)
    return {"case_id": case_id, **dict(zip("x0 y0 x1 y1".split(), box)), "confidence": 0.0,
            "box_iou": box_iou(box, truth) if policy == "full_image_box" else 0.0, "fallback": policy}


def yolo_prompt(row) -> tuple[str, tuple[int, int, int, int] | None]:
    """(what SAM does, box) for a row of the chosen-box table: ``box``, ``no_prompt`` or ``empty_mask``."""
    if row["fallback"] in ("", "full_image_box"):
        return "box", (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
    return row["fallback"], None

