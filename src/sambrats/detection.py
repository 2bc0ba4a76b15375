"""The detector on whole test volumes: the automatic prompts of the volume protocol.

YOLO runs on every axial slice of every test volume (the 2D methods' slice images, ``slices``)
and keeps each slice's most confident detection above ``conf``; the table of those detections
(rule detect_volumes) prompts every automatic 3D row, so that none of them reads the ground truth:

* LoRA-SAM on every slice: a slice with a detection is prompted by its box, the others stay empty;
* MedSAM-2: the most confident detection of the volume gives the key slice and its box; a volume
  without a detection gets an empty mask.
"""

from __future__ import annotations

import logging

import pandas as pd

from .brats import get_layout, resolve_contrasts
from .outputs import read_tsv, write_tsv
from .progress import progress
from .scoring import test_cases
from .slices import to_rgb, volume_slices

log = logging.getLogger(__name__)

DETECTION_COLUMNS = ["case_id", "slice_index", "x0", "y0", "x1", "y1", "confidence"]
Prompt = tuple[tuple[int, int, int, int], float]  # (inclusive pixel box x0, y0, x1, y1; confidence)


def detect_slices(model, slices, imgsz: int, conf: float, device: str) -> list[Prompt | None]:
    """Per slice the detector's most confident (box, confidence) above ``conf``, None without one."""
    from .yolo import detect

    found = []
    for image in slices:
        boxes = detect(model, to_rgb(image), imgsz, conf, device)
        found.append(boxes[0] if boxes else None)
    return found


def detection_row(case_id: str, slice_index: int, prompt: Prompt) -> dict:
    """One row of a detection (or prompts) table: a box on one slice of a volume."""
    return {"case_id": case_id, "slice_index": slice_index, **dict(zip(("x0", "y0", "x1", "y1"), prompt[0])),
            "confidence": prompt[1]}


def detection_rows(case_id: str, prompts) -> list[dict]:
    """Rows of the detection (or prompts) table of one volume's per-slice prompts."""
    return [detection_row(case_id, k, prompt) for k, prompt in enumerate(prompts) if prompt is not None]


def write_volume_detections(weights, config_dir, cases_path, splits_path, out_path, layout_name: str, contrasts,
                            percentiles, imgsz: int, conf: float, device_name: str = "auto") -> None:
    """The detection table of every slice of every test volume (rule detect_volumes); reads the
    cases' images only."""
    from .yolo import device_argument, load_detector

    names = resolve_contrasts(get_layout(layout_name), contrasts)
    cases = read_tsv(cases_path).set_index("case_id")
    model = load_detector(weights, config_dir)
    device = device_argument(device_name)
    rows = []
    for case_id in progress(test_cases(splits_path), "YOLO on every slice", "case"):
        slices = volume_slices([cases.loc[case_id, name] for name in names], percentiles)
        found = detect_slices(model, slices, imgsz, conf, device)
        rows += detection_rows(case_id, found)
        log.info("%s: a detection on %d of %d slices", case_id, sum(item is not None for item in found), len(found))
    write_tsv(pd.DataFrame(rows, columns=DETECTION_COLUMNS), out_path)


def row_prompt(row) -> Prompt:
    """The (box, confidence) of one row of a detection table."""
    return (int(row.x0), int(row.y0), int(row.x1), int(row.y1)), float(row.confidence)


def slice_prompts(detections: pd.DataFrame, case_id: str, n_slices: int) -> list[Prompt | None]:
    """One volume's per-slice prompts from the detection table: a slice's box, None without one."""
    prompts: list[Prompt | None] = [None] * n_slices
    for row in detections[detections.case_id == case_id].itertuples():
        prompts[int(row.slice_index)] = row_prompt(row)
    return prompts


def key_slice_prompt(detections: pd.DataFrame, case_id: str) -> tuple[int, Prompt] | None:
    """(key slice, prompt) of one volume: its most confident detection (ties: the lowest slice); None
    without a detection."""
    found = detections[detections.case_id == case_id]
    if found.empty:
        return None
    row = found.sort_values(["confidence", "slice_index"], ascending=[False, True], kind="stable").iloc[0]
    return int(row.slice_index), row_prompt(row)

