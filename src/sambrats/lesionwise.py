"""BraTS's official lesion-wise metrics of every 3D mask, from brats-evaluation in its own environment.

BraTS scores lesion by lesion: connected components of the prediction are matched to those of the
reference, so a distant false-positive blob that global Dice barely notices counts as a lesion.
The official package (``brats-evaluation``, on ``panoptica``; AGPL-3.0) pins ``pandas<3`` and
``numpy<2.3``, which the workflow's own pins exclude, so it is not imported here: rule
``brats_evaluation_env`` makes a virtual environment of its own from envs/brats-evaluation.txt
(:func:`create_environment`), and :func:`score_run` runs :mod:`sambrats.lesionwise_program` with
that environment's Python on one run's masks.

Masks travel as NIfTI with the region as label 3: the package's ``gli`` config (BraTS 2024 labels)
counts label 3 in its wt, tc and et groups alike, so a binary region mask, of either label
convention (BraTS 2019's regions are mapped by :func:`sambrats.brats.region_mask` first), is scored
by the bundled config as that region, with nothing changed in it.

Conventions on top of the package's numbers: its infinite HD95 (a lesion or a mask with nothing to
match) becomes BraTS's 373.13 mm, as in :mod:`sambrats.metrics`; a case where neither mask holds
the region, for which the package reports no number, scores as BraTS scores it: Dice, NSD and
panoptic quality 1, HD95 0 mm, no lesion.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from . import brats
from .metrics import WORST_HD95_MM
from .outputs import read_tsv, staged_directory, write_tsv
from .processes import run_logged
from .progress import progress

log = logging.getLogger(__name__)

PROGRAM = Path(__file__).with_name("lesionwise_program.py")
LABEL = 3  # in the gli config's wt [1, 2, 3], tc [1, 3] and et [3] groups alike
# The package's per-case numbers we keep, and their names in our tables.
COLUMNS = {
    "tp": "lesions_tp",  # matched lesions
    "fp": "lesions_fp",  # predicted lesions that match none of the reference's
    "fn": "lesions_fn",  # reference lesions that nothing matches
    "sq_dsc": "lesion_dice",  # mean Dice of the matched lesions
    "sq_hd95": "lesion_hd95",
    "sq_nsd": "lesion_nsd",
    "pq_dsc": "panoptic_quality",  # matched-lesion Dice x F1 of the lesion counts
    "global_bin_dsc": "global_dice",
    "global_bin_hd95": "global_hd95",
    "global_bin_nsd": "global_nsd",
}
KEYS = ["case_id", "dataset", "region", "method", "prompt", "seed"]
BOTH_EMPTY = {"lesion_dice": 1.0, "lesion_hd95": 0.0, "lesion_nsd": 1.0, "panoptic_quality": 1.0,
              "global_dice": 1.0, "global_hd95": 0.0, "global_nsd": 1.0}


def environment_python(environment) -> Path:
    return Path(environment) / "bin" / "python"


def create_environment(environment, requirements, python: str | None = None) -> None:
    """A virtual environment at ``environment`` with exactly the packages of ``requirements`` (a
    complete lock, installed without dependency resolution), made from ``python`` (default: the
    interpreter this one was made from); it appears only once it imports the package."""
    python = python or sys._base_executable
    with staged_directory(environment) as folder:
        log.info("making a virtual environment with %s", python)
        run_logged([python, "-m", "venv", str(folder)], env=None)
        run_logged([str(environment_python(folder)), "-m", "pip", "install", "--no-deps", "--no-compile",
                    "--disable-pip-version-check", "--requirement", str(requirements)], env=None)
        run_logged([str(environment_python(folder)), "-c",
                    "from importlib.metadata import version; import panoptica, brats_evaluation; "
                    "print('brats-evaluation', version('brats-evaluation'), 'panoptica', version('panoptica'))"],
                   env=None)


def labelled_mask(mask: np.ndarray, reference: nib.Nifti1Image, path: Path) -> None:
    """A binary region mask as the package reads it: label 3 over ``reference``'s header."""
    brats.save_mask(np.where(mask, LABEL, 0), reference, path)


def write_jobs(metrics: pd.DataFrame, cases: pd.DataFrame, layout: brats.Layout, folder: Path) -> dict:
    """Each case's prediction and reference as label-3 NIfTI in ``folder``; the program's jobs."""
    seg_files = dict(zip(cases.case_id, cases.seg))
    jobs = {"region": metrics.region.iloc[0], "cases": []}
    for name in ("prediction", "reference"):  # panoptica reads the file ending from the name's first dot
        (folder / name).mkdir(parents=True)
    for row in progress(metrics.itertuples(), total=len(metrics), desc="masks for brats-evaluation", unit="case"):
        if row.case_id not in seg_files:
            raise ValueError(f"{row.case_id}: not in the case table, so no ground truth for its mask {row.mask_file}")
        seg_image, seg = brats.load_labels(Path(seg_files[row.case_id]), layout)
        mask_image, mask = brats.read_volume(Path(row.mask_file))
        if mask.shape != seg.shape:
            raise ValueError(f"{row.case_id}: mask {row.mask_file} has shape {mask.shape}, its ground truth "
                             f"{seg_files[row.case_id]} {seg.shape}")
        paths = {name: folder / name / f"{row.case_id}.nii.gz" for name in ("prediction", "reference")}
        labelled_mask(mask > 0, mask_image, paths["prediction"])
        labelled_mask(brats.region_mask(seg, layout, row.region), seg_image, paths["reference"])
        jobs["cases"].append({"case_id": row.case_id, **{name: str(path) for name, path in paths.items()}})
    return jobs


def lesionwise_table(results: dict, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per case of ``metrics`` (its KEYS kept) the package's numbers under our column names, with
    BraTS's conventions for infinite HD95 and for a case where neither mask holds the region."""
    reported = pd.DataFrame(results["cases"]).set_index("case_id")
    table = metrics.reindex(columns=KEYS).reset_index(drop=True)
    for name, column in COLUMNS.items():
        values = pd.to_numeric(reported[name].reindex(table.case_id), errors="coerce").to_numpy(dtype=float)
        table[column] = np.where(np.isposinf(values), WORST_HD95_MM, values)
    both_empty = (reported.global_bin_volume_pred.reindex(table.case_id).to_numpy() == 0) & (
        reported.global_bin_volume_ref.reindex(table.case_id).to_numpy() == 0)
    for column, value in BOTH_EMPTY.items():
        table.loc[both_empty, column] = value
    for column in ("lesions_tp", "lesions_fp", "lesions_fn"):
        table[column] = table[column].astype(int)
    table["evaluation"] = f"brats-evaluation {results['brats_evaluation']} ({results['config']})"
    return table


def score_run(metrics_path, cases_path, layout_name: str, environment, out_path) -> None:
    """The official lesion-wise metrics of one run's test masks (``metrics_path``: its per-case
    table, whose ``mask_file`` column names them) into ``out_path``."""
    metrics = read_tsv(metrics_path)
    if "split" in metrics:
        metrics = metrics[metrics.split == "test"]
    if "seed" not in metrics:
        metrics = metrics.assign(seed="")
    if metrics.empty:
        raise ValueError(f"{metrics_path} holds no test case to score")
    cases = read_tsv(cases_path)
    layout = brats.get_layout(layout_name)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lesionwise.", dir=Path(out_path).parent) as scratch:
        folder = Path(scratch)
        jobs = write_jobs(metrics, cases, layout, folder)
        (folder / "jobs.json").write_text(json.dumps(jobs, indent=1))
        run_logged([str(environment_python(environment)), str(PROGRAM), str(folder / "jobs.json"),
                    str(folder / "results.json")], env=None)
        results = json.loads((folder / "results.json").read_text())
    write_tsv(lesionwise_table(results, metrics), out_path)
