"""Dice, IoU, HD95, NSD and the shared metrics table on hand-built masks with known answers."""

import numpy as np
import pytest

from sambrats.metrics import WORST_HD95_MM, METRIC_COLUMNS, dice, iou, metrics_row, metrics_table, surface_metrics


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


def points(shape, *coordinates) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for coordinate in coordinates:
        mask[coordinate] = True
    return mask


@pytest.mark.parametrize("spacing, hd95", [((1.0, 1.0), 4.0), ((2.0, 0.5), 2.0), ((0.5, 3.0), 12.0)])
def test_hd95_is_in_millimetres_along_each_axis(spacing, hd95):
    truth, pred = points((40, 40), (5, 5)), points((40, 40), (5, 9))  # 4 voxels apart along the second axis
    assert surface_metrics(pred, truth, spacing, 1.0)[0] == pytest.approx(hd95)


def test_hd95_in_3d_with_thick_slices():
    truth, pred = points((20, 20, 10), (5, 5, 2)), points((20, 20, 10), (5, 5, 4))
    assert surface_metrics(pred, truth, (1.0, 1.0, 3.0), 1.0)[0] == pytest.approx(6.0)


def test_hd95_is_the_95th_percentile_not_the_maximum():
    truth = np.zeros((60, 60), bool)
    truth[10:50, 10:50] = True
    pred = truth.copy()
    pred[29:31, 50:58] = True  # a thin spike: its tip is 8 mm away, few surface points are
    hd95, _ = surface_metrics(pred, truth, (1.0, 1.0), 1.0)
    assert 0 < hd95 < 8.0


def test_nsd_counts_surface_within_the_tolerance_in_millimetres():
    truth, pred = points((40, 40), (5, 5)), points((40, 40), (5, 9))
    assert surface_metrics(pred, truth, (2.0, 0.5), 2.5)[1] == pytest.approx(1.0)  # 2 mm apart
    assert surface_metrics(pred, truth, (1.0, 1.0), 2.5)[1] == pytest.approx(0.0)  # 4 mm apart
    half = surface_metrics(points((40, 40), (5, 5), (30, 5)), points((40, 40), (5, 5), (30, 30)), (1.0, 1.0), 1.0)
    assert half[1] == pytest.approx(0.5)  # one of two lesions found, one of two predicted is right


def test_identical_masks_and_empty_masks():
    truth = points((30, 30, 8), (10, 10, 3), (11, 10, 3), (10, 11, 4))
    assert surface_metrics(truth, truth, (1.0, 1.0, 1.0), 1.0) == (0.0, 1.0)
    empty = np.zeros_like(truth)
    assert surface_metrics(empty, empty, (1.0, 1.0, 1.0), 1.0) == (0.0, 1.0)
    # a miss: BraTS's worst HD95, the diagonal of its 240 x 240 x 155 volumes at 1 mm, in 3D and 2D alike
    assert WORST_HD95_MM == pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=0.01)
    assert surface_metrics(empty, truth, (1.0, 1.0, 2.0), 1.0) == (WORST_HD95_MM, 0.0)
    assert surface_metrics(truth, empty, (1.0, 1.0, 2.0), 1.0) == (WORST_HD95_MM, 0.0)
    assert surface_metrics(empty[:, :, 0], truth[:, :, 3], (1.0, 1.0), 1.0) == (WORST_HD95_MM, 0.0)


def test_shapes_and_spacing_must_agree():
    with pytest.raises(ValueError, match="do not match"):
        surface_metrics(np.ones((4, 4)), np.ones((4, 4)), (1.0, 1.0, 1.0), 1.0)


def test_metrics_table_keeps_the_shared_columns_first():
    truth = np.eye(3, dtype=bool)
    row = metrics_row("c1", "brats2024", "wt", "lora_sam", "gt_box", truth, truth, "p/c1.npz", (1.0, 1.0), 1.0,
                      prompt_box="0,0,2,2")
    table = metrics_table([row])
    assert table.columns.tolist() == METRIC_COLUMNS + ["prompt_box"]
    assert table.iloc[0].to_dict() == {
        "case_id": "c1", "dataset": "brats2024", "region": "wt", "method": "lora_sam", "prompt": "gt_box", "dice": 1.0,
        "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "area_true": 3, "area_pred": 3, "mask_file": "p/c1.npz",
        "prompt_box": "0,0,2,2",
    }
