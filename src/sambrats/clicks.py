"""Point prompts and simulated correction clicks, on 2D slices and 3D volumes alike.

Conventions (those of ``slices``): a click's ``index`` is an array index of the mask it was made on,
``(row, column)`` of a 2D slice or ``(i, j, k)`` of a volume; SAM-family models take points as
``(x, y)`` = ``(column, row)`` of a slice, which ``Click.xy`` and ``Click.frame_point`` give (a
volume's axial slice ``k`` is ``volume[:, :, k].T``, so its ``(x, y)`` is ``(i, j)``).

The correction click is the CVPR 2025 foundation-model challenge's (``CVPR25_iter_eval.py`` in
JunMa11/CVPR-MedSegFMCompetition): the largest connected component of the error (prediction !=
ground truth; 8-connected in 2D, 26-connected in 3D), the voxel of it farthest from its boundary
(Euclidean distance transform, the image's edge counting as boundary), ties broken by the
challenge's fixed draw; a positive click where the error is missed tumour, a negative one where it
is a false positive. Its interaction AUC is the trapezoid of the scores after clicks 1..n at unit
spacing, the box's prediction left out, as the challenge computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .metrics import dice, surface_metrics
from .slices import case_rng

TIE_SEED = 42  # the challenge draws among equally interior voxels with np.random.seed(42)
CLICK_MODE = "gt_box_clicks"  # the GT box, then the protocol's correction clicks
POINT_STREAM = 1_000_003  # the random points' generator stream beside the jitter levels'


@dataclass(frozen=True)
class Click:
    index: tuple[int, ...]  # (row, column) of a slice, or (i, j, k) of a volume
    positive: bool  # True: "this is tumour"; False: "this is not"

    @property
    def xy(self) -> tuple[int, int]:
        """A 2D click as SAM's point: (x, y) = (column, row)."""
        row, column = self.index
        return column, row

    @property
    def frame_point(self) -> tuple[int, tuple[int, int]]:
        """A 3D click as sam2's prompt: (axial frame k, (x, y) on it) = (k, (i, j))."""
        i, j, k = self.index
        return k, (i, j)


def most_interior(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the mask voxel farthest from the mask's boundary (the image's edge counts as
    boundary); ties broken by the challenge's fixed draw among them in C order. The transform runs
    on the mask's bounding box padded by one voxel: the nearest non-mask voxel of any mask voxel is
    within it, so the distances (and the candidates' order) are those of the whole image."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("most_interior of an empty mask")
    found = np.argwhere(mask)
    low, high = found.min(axis=0), found.max(axis=0) + 1
    crop = mask[tuple(slice(a, b) for a, b in zip(low, high))]
    distance = ndimage.distance_transform_edt(np.pad(crop, 1))[(slice(1, -1),) * mask.ndim]
    candidates = np.argwhere(distance == distance.max())
    chosen = candidates[np.random.RandomState(TIE_SEED).choice(len(candidates))] + low
    return tuple(int(v) for v in chosen)


def random_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct voxels of the mask (all of them if fewer), drawn by ``rng``, in draw order."""
    voxels = np.argwhere(np.asarray(mask, dtype=bool))
    if len(voxels) == 0:
        raise ValueError("random_points of an empty mask")
    chosen = rng.choice(len(voxels), size=min(count, len(voxels)), replace=False)
    return [tuple(int(v) for v in voxels[i]) for i in chosen]


def point_modes(counts) -> list[str]:
    """Point prompt modes: the region's most interior point, each count of seeded random points of
    it, and the GT box with the interior point."""
    return ["point_interior", *[f"points{k}" for k in sorted(set(counts))], "gt_box_point"]


def mode_points(mode: str, mask: np.ndarray, box, seed: int, case_id: str) -> tuple[tuple | None, list[Click]]:
    """(box or None, positive clicks) of a point mode on a slice's ``mask`` (its GT ``box``); the
    random points drawn reproducibly per case and count, the same for every model and replicate."""
    if mode in ("point_interior", "gt_box_point"):
        return (box if mode == "gt_box_point" else None), [Click(most_interior(mask), True)]
    count = int(mode.removeprefix("points"))
    rng = case_rng(seed, case_id, POINT_STREAM, count)
    return None, [Click(index, True) for index in random_points(mask, count, rng)]


def click_text(click: Click) -> str:
    """A click as a table cell: its index and sign, ``x,y,+`` on a slice (SAM's order), ``i,j,k,-``
    in a volume (the voxel)."""
    where = click.xy if len(click.index) == 2 else click.index
    return ",".join(map(str, where)) + ("," + ("+" if click.positive else "-"))


def clicks_text(clicks: list[Click]) -> str:
    """Clicks as a table cell, ``;`` between them."""
    return ";".join(click_text(click) for click in clicks)


STEP_COLUMNS = ["case_id", "seed", "step", "dice", "nsd", "click"]  # a clicks.tsv: one row per protocol step


def protocol_scores(case_id: str, masks: list[np.ndarray], clicks: list[Click], truth: np.ndarray, spacing,
                    tolerance_mm: float) -> tuple[list[dict], dict]:
    """The click protocol's per-step scores of one case (step 0: the box; step n: after click n,
    with that click; ``simulate``'s output: a perfect mask ends the clicks) and its summary: Dice
    and NSD AUC over the clicks, as the challenge computes them."""
    rows = []
    for step, mask in enumerate(masks):
        _, nsd = surface_metrics(mask, truth, spacing, tolerance_mm)
        click = clicks[step - 1] if 0 < step <= len(clicks) else None
        rows.append({"case_id": case_id, "step": step, "dice": dice(mask, truth), "nsd": nsd,
                     "click": "" if click is None else click_text(click)})
    summary = {"dice_auc": interaction_auc([row["dice"] for row in rows[1:]]),
               "nsd_auc": interaction_auc([row["nsd"] for row in rows[1:]])}
    return rows, summary


def largest_error(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray | None:
    """The largest connected component of prediction != truth (full connectivity: 8 in 2D, 26 in
    3D; of equal sizes the first in C order), or None where the prediction is right everywhere."""
    error = np.asarray(prediction, dtype=bool) != np.asarray(truth, dtype=bool)
    if not error.any():
        return None
    labels, _ = ndimage.label(error, structure=ndimage.generate_binary_structure(error.ndim, error.ndim))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def correction_click(prediction: np.ndarray, truth: np.ndarray) -> Click | None:
    """The next simulated click: at the most interior voxel of the largest error component, positive
    where the ground truth holds the region there; None for a perfect prediction."""
    component = largest_error(prediction, truth)
    if component is None:
        return None
    index = most_interior(component)
    return Click(index, bool(np.asarray(truth, dtype=bool)[index]))


def interaction_auc(scores) -> float:
    """Area under the score-per-click curve (clicks 1..n, unit spacing, trapezoid rule)."""
    scores = np.asarray(scores, dtype=float)
    return float(np.sum((scores[1:] + scores[:-1]) / 2))


def simulate(predict, truth: np.ndarray, first: np.ndarray, n_clicks: int) -> tuple[list[np.ndarray], list[Click]]:
    """The click protocol from a box's prediction ``first``: ``n_clicks`` times, a correction click
    on the latest mask, then ``predict(clicks so far, latest mask)`` for the next one (a perfect mask
    gets no click and stays, as a deterministic model rerun on the same input). Returns the masks
    (the box's, then one per click) and the clicks made."""
    masks, clicks = [np.asarray(first, dtype=bool)], []
    for _ in range(n_clicks):
        click = correction_click(masks[-1], truth)
        if click is None:
            masks.append(masks[-1])
            continue
        clicks.append(click)
        masks.append(np.asarray(predict(list(clicks), masks[-1]), dtype=bool))
    return masks, clicks
