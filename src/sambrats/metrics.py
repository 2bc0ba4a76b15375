"""Overlap metrics and the per-case metrics table every method writes."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["case_id", "dataset", "method", "prompt", "dice", "iou", "area_true", "area_pred", "mask_file"]


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


def metrics_row(case_id: str, dataset: str, method: str, prompt: str, pred, truth, mask_file, **extra) -> dict:
    """One row of the shared per-case metrics table; ``mask_file`` is where the predicted mask
    is saved (an npz with a ``mask`` array), as it will be found from the working directory."""
    return {
        "case_id": case_id,
        "dataset": dataset,
        "method": method,
        "prompt": prompt,
        "dice": dice(pred, truth),
        "iou": iou(pred, truth),
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
