"""Scoring 3D masks against the ground truth: the step after prediction, as in the BraTS challenge.

A method of the volume protocol is done when it has written ``{case}.nii.gz`` for every test case;
this module reads those masks and each case's region of the ground truth and writes the shared
per-case metrics table (3D, in mm, BraTS's empty-mask conventions, ``split`` test).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .brats import get_layout, load_labels, region_mask
from .metrics import metrics_row, metrics_table
from .outputs import read_tsv, write_tsv
from .progress import progress

log = logging.getLogger(__name__)


def test_cases(splits_path) -> list[str]:
    """The test split's case ids, in the split table's order."""
    splits = read_tsv(splits_path)
    return splits.case_id[splits.split == "test"].tolist()


def slice_detection(truth: np.ndarray, prompted_slices) -> dict[str, int]:
    """Slice-level detection of "the region is present" over the axial slices of one volume: the
    prompted slices (a box was given) against the slices that hold the region."""
    present = truth.any(axis=(0, 1))
    prompted = np.zeros_like(present)
    prompted[list(prompted_slices)] = True
    return {"slices_tp": int((present & prompted).sum()), "slices_fp": int((~present & prompted).sum()),
            "slices_fn": int((present & ~prompted).sum()), "slices_tn": int((~present & ~prompted).sum())}


def score_volume_masks(masks_dir, case_ids, cases_path, dataset: str, layout_name: str, region: str,
                       method: str, prompt: str, tolerance_mm: float, seed="", published_dir=None,
                       prompts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-case metrics of the masks ``{masks_dir}/{case}.nii.gz`` of ``case_ids`` against the
    region of each case's seg (from the case table); ``published_dir``: where the masks will be
    found from the working directory, if not ``masks_dir``; ``prompts``: the prompted slices
    (``case_id``, ``slice_index``) of a per-slice prompted method, whose slice-level detection
    joins each row. A missing or misshapen mask is an error that names the case and the file."""
    layout = get_layout(layout_name)
    cases = read_tsv(cases_path).set_index("case_id")
    published = Path(published_dir or masks_dir)
    rows = []
    for case_id in progress(case_ids, f"scoring {method} {prompt} on {dataset} {region}", "case"):
        mask_path = Path(masks_dir) / f"{case_id}.nii.gz"
        if not mask_path.is_file():
            raise FileNotFoundError(f"{case_id}: no mask {mask_path} ({method} {prompt} must segment every test case)")
        image = nib.load(mask_path)
        prediction = np.asanyarray(image.dataobj) > 0
        seg_path = Path(cases.loc[case_id, "seg"])
        _, seg = load_labels(seg_path, layout)
        truth = region_mask(seg, layout, region)
        if prediction.shape != truth.shape:
            raise ValueError(f"{case_id}: mask {mask_path} has shape {prediction.shape}, its ground truth "
                             f"{seg_path} {truth.shape}")
        detection = {} if prompts is None else slice_detection(
            truth, prompts.slice_index[prompts.case_id == case_id].astype(int))
        rows.append(metrics_row(case_id, dataset, region, method, prompt, prediction, truth,
                                published / f"{case_id}.nii.gz", image.header.get_zooms()[:3], tolerance_mm,
                                split="test", seed=seed, **detection))
    return metrics_table(rows)


def write_volume_scores(masks_dir, splits_path, cases_path, metrics_path, dataset: str, layout_name: str,
                        region: str, method: str, prompt: str, tolerance_mm: float, seed="",
                        prompts_path=None) -> None:
    """The metrics table of one run's masks of every test case (rule score_volumes), with the
    slice-level detection of its prompts table if given."""
    prompts = None if prompts_path is None else read_tsv(prompts_path)
    table = score_volume_masks(masks_dir, test_cases(splits_path), cases_path, dataset, layout_name, region,
                               method, prompt, tolerance_mm, seed, prompts=prompts)
    write_tsv(table, metrics_path)
    log.info("%s %s on %s volumes: Dice %.4f, IoU %.4f (n=%d, %d without the region)", method, prompt, dataset,
             table.dice.mean(), table.iou.mean(), len(table), int((table.area_true == 0).sum()))
