"""LoRA-SAM on whole volumes (the volume protocol): every axial slice of a test volume segmented
with its own box prompt, the slices stacked into a NIfTI mask over the input's header.

Two ways to prompt a slice:

* ``box_per_slice`` (oracle): the ground truth's tight box of the region on each slice that holds
  it; the other slices stay empty. The upper bound of a box-prompted 2D model.
* ``yolo_per_slice`` (automatic): the detector's table of every slice (``detection``, rule
  detect_volumes): a slice with a detection is prompted by its box, the others stay empty. No
  ground truth is read.

Slices are the 2D methods' images (``slices``: row = j, column = i; one contrast or three as RGB,
each normalised by its whole volume), so a model trained on the slice dataset sees the same pixels.
Beside the masks, ``prompts.tsv`` lists every prompted slice (case, slice index, box, confidence).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .brats import get_layout, load_labels, region_mask, resolve_contrasts, save_mask
from .detection import DETECTION_COLUMNS, detection_rows, slice_prompts
from .outputs import read_tsv, staged_directory, write_tsv
from .progress import progress
from .scoring import test_cases
from .slices import axial_slice, tight_box, volume_slices

log = logging.getLogger(__name__)

ORACLE = "box_per_slice"
AUTOMATIC = "yolo_per_slice"
PROMPTS = (ORACLE, AUTOMATIC)


def truth_boxes(region_volume: np.ndarray) -> list[tuple | None]:
    """The oracle's prompts: per axial slice the tight box of the region, None where it is absent."""
    return [None if not mask.any() else (tight_box(mask), 1.0)
            for mask in (axial_slice(region_volume, k) for k in range(region_volume.shape[2]))]


def segment_volume(model, processor, slices, prompts, device) -> np.ndarray:
    """LoRA-SAM on every prompted slice (one image embedding each); unprompted slices empty. The
    mask in the volume's [i, j, k] order."""
    from .sam import predict_prompts

    height, width = slices[0].shape[:2]
    volume = np.zeros((width, height, len(slices)), dtype=np.uint8)
    for k, (image, prompt) in enumerate(zip(slices, prompts)):
        if prompt is not None:
            volume[:, :, k] = predict_prompts(model, processor, image, {"box": prompt[0]}, device)["box"].T
    return volume


def write_volume_masks(base_model, adapter_dir, cases_path, splits_path, out_dir, prompts_path, layout_name: str,
                       region: str, contrasts, percentiles, prompt: str, device_name: str = "auto",
                       detections_path=None) -> None:
    """``{case}.nii.gz`` for every test case of the split (uint8 over the first contrast's header) and
    the prompts table, by the LoRA adapter on ``base_model``, prompted by ``prompt`` (``PROMPTS``);
    the automatic prompt reads the detector's table ``detections_path`` and no segmentation."""
    import torch
    from peft import PeftModel

    from .devices import resolve_device
    from .sam import load_base

    if prompt not in PROMPTS:
        raise ValueError(f"unknown volume prompt {prompt!r}; choose one of {PROMPTS}")
    if prompt == AUTOMATIC and detections_path is None:
        raise ValueError(f"{AUTOMATIC} needs the detector's table of the test volumes")
    layout = get_layout(layout_name)
    names = resolve_contrasts(layout, contrasts)
    cases = read_tsv(cases_path).set_index("case_id")
    device = resolve_device(device_name)
    base, processor = load_base(base_model, device)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(device)
    detections = None if detections_path is None else read_tsv(detections_path)
    rows = []
    with staged_directory(out_dir) as folder, torch.no_grad():
        for case_id in progress(test_cases(splits_path), f"LoRA-SAM {prompt} volumes", "case"):
            image_paths = [cases.loc[case_id, name] for name in names]
            slices = volume_slices(image_paths, percentiles)
            if prompt == ORACLE:
                _, seg = load_labels(Path(cases.loc[case_id, "seg"]), layout)
                prompts = truth_boxes(region_mask(seg, layout, region))
            else:
                prompts = slice_prompts(detections, case_id, len(slices))
            mask = segment_volume(model, processor, slices, prompts, device)
            save_mask(mask, nib.load(image_paths[0]), folder / f"{case_id}.nii.gz")
            rows += detection_rows(case_id, prompts)
            log.info("%s: %d of %d slices prompted, %d mask voxels", case_id, sum(p is not None for p in prompts),
                     len(prompts), int(mask.sum()))
    write_tsv(pd.DataFrame(rows, columns=DETECTION_COLUMNS), prompts_path)
