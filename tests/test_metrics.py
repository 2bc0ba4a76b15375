"""Dice, IoU and the shared metrics table on known arrays."""

import numpy as np
import pytest

from sambrats.metrics import METRIC_COLUMNS, dice, iou, metrics_row, metrics_table


def test_dice_and_iou_on_known_masks():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True  # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True  # 6 pixels, 4 shared
    assert dice(pred, truth) == pytest.approx(2 * 4 / 10)
    assert iou(pred, truth) == pytest.approx(4 / 6)
    assert dice(truth, truth) == iou(truth, truth) == 1.0
    assert dice(~truth, truth) == iou(~truth, truth) == 0.0
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == iou(empty, empty) == 1.0
    assert dice(empty, truth) == 0.0


def test_metrics_table_keeps_the_shared_columns_first():
    truth = np.eye(3, dtype=bool)
    table = metrics_table([metrics_row("c1", "brats2024", "lora_sam", "gt_box", truth, truth, "p/c1.npz", prompt_box="0,0,2,2")])
    assert table.columns.tolist() == METRIC_COLUMNS + ["prompt_box"]
    assert table.iloc[0].to_dict() == {
        "case_id": "c1", "dataset": "brats2024", "method": "lora_sam", "prompt": "gt_box",
        "dice": 1.0, "iou": 1.0, "area_true": 3, "area_pred": 3, "mask_file": "p/c1.npz", "prompt_box": "0,0,2,2",
    }
