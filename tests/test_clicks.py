"""The click simulator on hand-built masks: positions, labels, axis order, connectivity, ties, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from sambrats import clicks
from sambrats.slices import axial_slice


def square(shape, rows, columns) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, columns] = True
    return mask


def test_a_missed_tumour_gets_a_positive_click_at_its_centre_and_sam_reads_it_as_x_y():
    truth = square((12, 20), slice(2, 7), slice(10, 15))  # rows 2..6, columns 10..14
    click = clicks.correction_click(np.zeros_like(truth), truth)
    assert click == clicks.Click((4, 12), True)  # (row, column)
    assert click.xy == (12, 4)  # SAM's point: x = column, y = row


def test_the_largest_error_decides_and_a_false_positive_gets_a_negative_click():
    truth = square((20, 20), slice(2, 5), slice(2, 5))  # 9 px missed
    prediction = square((20, 20), slice(10, 17), slice(8, 15))  # 49 px false positive, centre (13, 11)
    click = clicks.correction_click(prediction, truth)
    assert click == clicks.Click((13, 11), False)
    assert clicks.correction_click(truth, truth) is None  # nothing to correct


def test_diagonal_neighbours_are_one_error_component_8_connected_in_2d():
    truth = np.zeros((9, 9), bool)
    truth[[1, 2, 3], [1, 2, 3]] = True  # a diagonal line of 3: one component with 8-connectivity
    truth[6:8, 6] = True  # a vertical pair: 2 px
    component = clicks.largest_error(np.zeros_like(truth), truth)
    assert component.sum() == 3 and component[2, 2]


def test_corner_neighbours_are_one_error_component_26_connected_in_3d_and_the_click_maps_to_its_frame():
    truth = np.zeros((8, 8, 8), bool)
    truth[[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]] = True  # corner to corner: one 26-connected component
    truth[6, 6, 5:8] = True  # 3 voxels in a row
    component = clicks.largest_error(np.zeros_like(truth), truth)
    assert component.sum() == 4
    volume = np.zeros((10, 12, 6), bool)
    volume[6, 2, 3] = True  # i = 6, j = 2, k = 3
    click = clicks.correction_click(np.zeros_like(volume), volume)
    assert click.index == (6, 2, 3) and click.positive
    frame, (x, y) = click.frame_point
    assert axial_slice(volume, frame)[y, x]  # the point sam2 gets lands on the voxel in its frame


def test_the_image_edge_counts_as_boundary():
    truth = square((10, 30), slice(0, 3), slice(0, 30))  # a strip along the top and both side edges
    click = clicks.correction_click(np.zeros_like(truth), truth)
    assert click.index[0] == 1  # the middle row of the strip, not the edge row 0


def test_ties_are_broken_by_the_challenges_fixed_draw_and_stay_among_the_most_interior():
    truth = square((10, 10), slice(2, 6), slice(2, 6))  # 4 x 4: four equally interior pixels
    first = clicks.most_interior(truth)
    assert first in {(3, 3), (3, 4), (4, 3), (4, 4)}
    assert all(clicks.most_interior(truth) == first for _ in range(3))
    with pytest.raises(ValueError, match="empty mask"):
        clicks.most_interior(np.zeros((4, 4), bool))


def test_random_points_are_distinct_inside_the_mask_and_fixed_by_the_seed():
    truth = square((30, 30), slice(5, 20), slice(8, 25))
    points = clicks.random_points(truth, 5, np.random.default_rng([7, 1]))
    assert len(set(points)) == 5 and all(truth[p] for p in points)
    assert clicks.random_points(truth, 5, np.random.default_rng([7, 1])) == points
    assert clicks.random_points(truth, 5, np.random.default_rng([8, 1])) != points
    assert len(clicks.random_points(square((5, 5), 2, 2), 3, np.random.default_rng(0))) == 1  # fewer voxels


def test_simulated_refinement_feeds_each_click_and_the_previous_mask_back():
    """A predictor that paints a 3 x 3 patch at each positive click and clears one at each negative:
    the protocol reaches the tumour from an empty box prediction, click by click."""
    truth = square((16, 16), slice(2, 5), slice(2, 5)) | square((16, 16), slice(9, 12), slice(9, 12))
    seen = []

    def paint(made, previous):
        seen.append((len(made), previous.sum()))
        mask = previous.copy()
        last = made[-1]
        row, column = last.index
        mask[max(row - 1, 0):row + 2, max(column - 1, 0):column + 2] = last.positive
        return mask

    masks, made = clicks.simulate(paint, truth, np.zeros_like(truth), n_clicks=5)
    assert len(masks) == 6 and [click.positive for click in made] == [True, True]
    assert {click.index for click in made} == {(3, 3), (10, 10)}
    assert seen == [(1, 0), (2, 9)]  # every click so far and the latest mask
    assert np.array_equal(masks[-1], truth) and all(np.array_equal(m, truth) for m in masks[3:])


def test_interaction_auc_is_the_trapezoid_over_clicks():
    assert clicks.interaction_auc([0.5, 0.6, 0.7, 0.8, 0.9]) == pytest.approx(2.8)
    assert clicks.interaction_auc([1.0] * 5) == pytest.approx(4.0)


def test_the_interior_point_on_the_bounding_box_is_the_whole_image_s():
    """most_interior crops to the mask's bounding box padded by one voxel: the same voxel as the
    transform over the whole image padded at its edge (the challenge's), ties and edges included."""
    from scipy import ndimage

    def whole_image(mask):
        distance = ndimage.distance_transform_edt(np.pad(mask, 1))[(slice(1, -1),) * mask.ndim]
        candidates = np.argwhere(distance == distance.max())
        return tuple(int(v) for v in candidates[np.random.RandomState(clicks.TIE_SEED).choice(len(candidates))])

    rng = np.random.default_rng(5)
    masks = [square((9, 12), slice(0, 4), slice(8, 12)), square((6, 6), slice(0, 6), slice(0, 6))]  # edges, ties
    masks += [ndimage.binary_opening(rng.random(shape) > 0.4) for shape in [(30, 25)] * 4 + [(14, 12, 10)] * 4]
    for mask in masks:
        if mask.any():
            assert clicks.most_interior(mask) == whole_image(mask)


def test_point_modes_give_the_interior_point_seeded_random_points_and_the_box():
    mask = square((20, 20), slice(4, 11), slice(6, 13))  # centre (7, 9)
    box = (6, 4, 12, 10)
    assert clicks.point_modes([5, 1, 3]) == ["point_interior", "points1", "points3", "points5", "gt_box_point"]
    assert clicks.mode_points("point_interior", mask, box, 0, "c1") == (None, [clicks.Click((7, 9), True)])
    assert clicks.mode_points("gt_box_point", mask, box, 0, "c1") == (box, [clicks.Click((7, 9), True)])
    _, three = clicks.mode_points("points3", mask, box, 0, "c1")
    assert len({c.index for c in three}) == 3 and all(mask[c.index] and c.positive for c in three)
    assert clicks.mode_points("points3", mask, box, 0, "c1")[1] == three  # seeded by seed, case and count
    assert clicks.mode_points("points3", mask, box, 0, "c2")[1] != three
    assert clicks.clicks_text(three[:1] + [clicks.Click((3, 5), False)]) == f"{three[0].xy[0]},{three[0].xy[1]},+;5,3,-"
    assert clicks.click_text(clicks.Click((4, 5, 6), False)) == "4,5,6,-"  # a volume's click: its voxel


def test_the_protocol_s_steps_are_scored_with_their_clicks_and_summarised_by_the_auc():
    truth = square((16, 16), slice(4, 10), slice(4, 10))
    made = [clicks.Click((6, 6), True), clicks.Click((1, 1), False)]
    masks = [np.zeros_like(truth), square((16, 16), slice(4, 10), slice(4, 7)), truth]
    rows, summary = clicks.protocol_scores("c1", masks, made, truth, (1.0, 1.0), 1.0)
    assert [row["step"] for row in rows] == [0, 1, 2] and [row["click"] for row in rows] == ["", "6,6,+", "1,1,-"]
    assert [row["dice"] for row in rows] == pytest.approx([0.0, 2 / 3, 1.0])
    assert summary["dice_auc"] == pytest.approx((2 / 3 + 1) / 2) and rows[2]["nsd"] == pytest.approx(1.0)
