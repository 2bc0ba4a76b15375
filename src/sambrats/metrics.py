"""Overlap and surface metrics, in millimetres, and the per-case metrics table every method writes.

Dice and IoU count voxels; HD95 (95th percentile of the symmetric surface distances) and NSD
(normalised surface Dice at a tolerance in mm, surfaces with sub-voxel boundaries as in
DeepMind's surface-distance) come from MONAI with the voxel spacing of the NIfTI header.

Empty masks, as in the BraTS challenge: both empty gives Dice 1, IoU 1, HD95 0 mm, NSD 1; one of
them empty gives Dice 0, IoU 0, NSD 0 and HD95 BraTS's worst value, 373.13 mm (the diagonal of its
240 x 240 x 155 volumes at 1 mm), for slices and volumes alike, so that a miss weighs the same in
every row.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["case_id", "dataset", "region", "method", "prompt", "dice", "iou", "hd95", "nsd", "area_true",
                  "area_pred", "mask_file"]


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two binary masks; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, truth).sum() / total)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


WORST_HD95_MM = 373.13  # BraTS's HD95 of an empty mask against a non-empty one


def surface_metrics(pred: np.ndarray, truth: np.ndarray, spacing, tolerance_mm: float) -> tuple[float, float]:
    """(HD95 in mm, NSD at ``tolerance_mm``) of two binary masks (2D or 3D) with voxel ``spacing`` in mm."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape or len(spacing) != truth.ndim:
        raise ValueError(f"masks {pred.shape} and {truth.shape} with spacing {tuple(spacing)} do not match")
    if not pred.any() and not truth.any():
        return 0.0, 1.0
    if not pred.any() or not truth.any():
        return WORST_HD95_MM, 0.0
    y_pred, y = (torch.from_numpy(mask[None, None].astype(np.float32)) for mask in (pred, truth))
    spacing = [float(value) for value in spacing]
    with warnings.catch_warnings():  # MONAI's own use of an argument it deprecated
        warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
        nsd = compute_surface_dice(y_pred, y, class_thresholds=[tolerance_mm], include_background=True,
                                   spacing=spacing, use_subvoxels=True)
    return float(hd95.item()), float(nsd.item())


def metrics_row(case_id: str, dataset: str, region: str, method: str, prompt: str, pred, truth, mask_file,
                spacing, tolerance_mm: float, **extra) -> dict:
    """One row of the shared per-case metrics table; ``mask_file`` is where the predicted mask
    is saved, as it will be found from the working directory; ``spacing`` the voxel size in mm
    along the masks' axes."""
    hd95, nsd = surface_metrics(pred, truth, spacing, tolerance_mm)
    return {
        "case_id": case_id,
        "dataset": dataset,
        "region": region,
        "method": method,
        "prompt": prompt,
        "dice": dice(pred, truth),
        "iou": iou(pred, truth),
        "hd95": hd95,
        "nsd": nsd,
        "area_true": int(np.count_nonzero(truth)),
        "area_pred": int(np.count_nonzero(pred)),
        "mask_file": str(mask_file),
        **extra,
    }


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    """Rows in the shared column order (extra columns after the shared ones)."""
    table = pd.DataFrame(rows)
    extra = [name for name in table.columns if name not in METRIC_COLUMNS]
    return table.reindex(columns=METRIC_COLUMNS + extra)
