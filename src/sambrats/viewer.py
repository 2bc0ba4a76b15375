"""Interactive 3D viewer: one self-contained HTML page per dataset and region, NiiVue inside.

The page shows, for the comparison baseline's best, median and worst test case (and any configured
case), the MRI volume(s) the 3D methods saw, the ground truth and every 3D method's mask as overlays
that a click toggles, in axial, coronal, sagittal, multiplanar and 3D render views, with each
method's Dice on the case. Everything is embedded: NiiVue's UMD bundle (fetched from the npm
registry by :func:`fetch_niivue`, checked against its pinned SHA-512) and the volumes as gzip
NIfTI in base64, cropped to the brain's bounding box, so the page opens offline from a file, with
no server. Gzip without a time stamp and sorted JSON make reruns byte-identical.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import logging
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .brats import get_layout, load_labels, read_volume, region_mask, resolve_modality
from .outputs import read_tsv, staged_directory
from .report import load_metrics, row_label
from .slices import intensity_range, normalise

log = logging.getLogger(__name__)

BUNDLE = "niivue.umd.js"  # the package's UMD build: a classic script that defines ``niivue``
LICENCE = "LICENSE"
TRUTH_COLOUR = "green"
# NiiVue colour maps, in method order; none greenish, so that the ground truth (green) stands apart.
MASK_COLOURS = ("red", "blue", "violet", "warm", "copper", "gold", "cool")
CSS_COLOURS = {"green": "#00ff00", "red": "#ff0000", "blue": "#0000ff", "violet": "#ff00ff",
               "warm": "#ffa500", "copper": "#b87333", "gold": "#ffd700", "cool": "#00ffff"}
MARGIN = 2  # voxels kept around the brain's bounding box
# The npm tarball carries no licence file: NiiVue's LICENSE, as in its repository (niivue/niivue).
NIIVUE_LICENCE = """BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def sri_digest(data: bytes) -> str:
    """The npm registry's ``integrity`` of a tarball: SHA-512, base64."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_niivue(source: str, integrity: str, out_dir) -> None:
    """NiiVue's UMD bundle from its npm tarball (a URL or a local path), checked against the pinned
    ``integrity``, and its licence beside it; nothing is written unless the tarball matches."""
    try:
        if "://" in source:
            with urllib.request.urlopen(source, timeout=120) as response:
                data = response.read()
        else:
            data = Path(source).read_bytes()
    except OSError as err:
        raise RuntimeError(f"cannot read NiiVue's tarball {source}: {err}. On a machine without access to "
                           "the npm registry, set viewer.niivue.tarball to a local copy of the .tgz") from err
    if sri_digest(data) != integrity:
        raise ValueError(f"NiiVue tarball {source} has integrity {sri_digest(data)}, not the pinned "
                         f"viewer.niivue.integrity {integrity}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        bundle = tar.extractfile(f"package/dist/{BUNDLE}").read()
    with staged_directory(out_dir) as folder:
        (folder / BUNDLE).write_bytes(bundle)
        (folder / LICENCE).write_text(NIIVUE_LICENCE)


def pick_cases(metrics: pd.DataFrame, baseline: str, extra=()) -> list[tuple[str, str]]:
    """(case, why) for the baseline's worst, median and best test case with the region by Dice
    averaged over its replicates (ties by case id), then each ``extra`` case; each case once."""
    rows = metrics[(metrics.method == baseline) & (metrics.split == "test") & (metrics.area_true > 0)]
    if rows.empty:
        raise ValueError(f"no test case with the region of the viewer's baseline {baseline!r} in the metrics tables")
    dice = rows.groupby("case_id").dice.mean().reset_index().sort_values(["dice", "case_id"], kind="stable")
    ordered = dice.case_id.tolist()
    picked = {ordered[-1]: "best", ordered[(len(ordered) - 1) // 2]: "median", ordered[0]: "worst"}
    for case in extra:
        picked.setdefault(case, "named in the config")
    return list(picked.items())


def brain_box(volume: np.ndarray, margin: int = MARGIN) -> tuple[slice, ...]:
    """The bounding box of the non-zero voxels, ``margin`` voxels wider (the whole volume if empty)."""
    nonzero = np.argwhere(volume != 0)
    if not len(nonzero):
        return tuple(slice(0, n) for n in volume.shape)
    low = np.maximum(nonzero.min(axis=0) - margin, 0)
    high = np.minimum(nonzero.max(axis=0) + 1 + margin, volume.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def embedded_nifti(data: np.ndarray, reference: nib.Nifti1Image, box: tuple[slice, ...]) -> str:
    """``data`` cropped to ``box`` as uint8 gzip NIfTI (no time stamp) in base64, placed where it
    lies in ``reference`` (its affine shifted by the crop's origin)."""
    crop = np.ascontiguousarray(data[box]).astype(np.uint8)
    affine = crop_affine(reference.affine, box)
    image = nib.Nifti1Image(crop, affine)
    image.header.set_zooms(reference.header.get_zooms()[:3])
    image.header.set_xyzt_units(*reference.header.get_xyzt_units())
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return base64.b64encode(gzip.compress(image.to_bytes(), compresslevel=9, mtime=0)).decode()


def crop_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """The affine of a crop: the same axes, its origin at the box's first voxel."""
    cropped = affine.copy()
    cropped[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box]) + affine[:3, 3]
    return cropped


def display_intensities(volume: np.ndarray) -> np.ndarray:
    """An MRI volume as 0-255 for display: clipped to the 0.5 / 99.5 percentiles of its non-zero
    voxels (as MedSAM-2's preprocessing), background 0."""
    return np.round(normalise(volume, *intensity_range(volume, (0.5, 99.5))) * 255)


@dataclass(frozen=True)
class ViewerJob:
    """One page: a dataset and region, what it shows and against which baseline."""

    dataset: str
    layout: str
    region: str
    modalities: tuple[str, ...]  # the MRI volumes the 3D methods saw
    baseline: str
    extra_cases: tuple[str, ...] = ()


def case_view(row: dict, reason: str, masks: pd.DataFrame, job: ViewerJob) -> dict:
    """One case's layers (MRI, ground truth, each method's mask) and legend entries."""
    if len(masks) > len(MASK_COLOURS):
        raise ValueError(f"{row['case_id']}: {len(masks)} masks to show, colours for {len(MASK_COLOURS)} "
                         "(viewer.MASK_COLOURS)")
    layout = get_layout(job.layout)
    names = [resolve_modality(layout, modality) for modality in job.modalities]
    images = {name: read_volume(Path(row[name])) for name in names}
    reference = images[names[0]][0]
    box = brain_box(sum(np.abs(np.asarray(volume, dtype=np.float64)) for _, volume in images.values()))
    backgrounds = [{"name": name, "nifti": embedded_nifti(display_intensities(volume), reference, box)}
                   for name, (_, volume) in images.items()]
    _, seg = load_labels(Path(row["seg"]), layout)
    truth = region_mask(seg, layout, job.region)
    overlays = [{"name": "ground truth", "colour": TRUTH_COLOUR, "dice": None,
                 "nifti": embedded_nifti(truth, reference, box)}]
    for colour, mask in zip(MASK_COLOURS, masks.itertuples()):
        _, prediction = read_volume(Path(mask.mask_file))
        label = row_label(mask.method, mask.prompt) + (f" (seed {mask.seed})" if mask.seed else "")
        overlays.append({"name": label, "colour": colour, "dice": round(float(mask.dice), 4),
                         "nifti": embedded_nifti(prediction > 0, reference, box)})
    return {"case_id": row["case_id"], "reason": reason, "backgrounds": backgrounds, "overlays": overlays,
            "centre_mm": tumour_centre_mm(truth[box], crop_affine(reference.affine, box))}


def tumour_centre_mm(truth: np.ndarray, affine: np.ndarray) -> list[float]:
    """Scanner coordinates (mm) of the voxel at the ground truth's centre of mass (the volume's
    centre if empty): where the page's crosshair starts, so that the three planes cut the tumour."""
    voxels = np.argwhere(truth)
    centre = np.round(voxels.mean(axis=0) if len(voxels) else (np.array(truth.shape) - 1) / 2)
    return [round(float(c), 3) for c in affine[:3, :3] @ centre + affine[:3, 3]]


def first_replicate_masks(metrics: pd.DataFrame, case_id: str) -> pd.DataFrame:
    """Per method and prompt of the (3D) ``metrics``, the mask of its first replicate (the only one
    of a zero-shot method) on a case."""
    rows = metrics[metrics.case_id == case_id]
    rows = rows.assign(seed_order=rows.seed.map(lambda seed: int(seed) if seed else -1))
    return rows.sort_values(["method", "prompt", "seed_order"]).groupby(["method", "prompt"], sort=False).head(1)


def viewer_cases(metric_paths, cases_path, job: ViewerJob) -> list[dict]:
    """Every picked case of the page, in the order worst, median, best, then named ones."""
    metrics = load_metrics(metric_paths)
    metrics = metrics[(metrics.dataset == job.dataset) & (metrics.region == job.region)]
    cases = read_tsv(cases_path).set_index("case_id", drop=False)
    picked = pick_cases(metrics, job.baseline, job.extra_cases)
    unknown = [case for case, _ in picked if case not in cases.index]
    if unknown:
        raise ValueError(f"viewer case(s) {unknown} are not accepted cases of {job.dataset} ({cases_path})")
    order = {"worst": 0, "median": 1, "best": 2}
    picked.sort(key=lambda item: order.get(item[1], 3))
    return [case_view(cases.loc[case].to_dict(), reason, first_replicate_masks(metrics, case), job)
            for case, reason in picked]


def page(title: str, library: str, licence: str, cases: list[dict]) -> str:
    """The HTML page: NiiVue's bundle and the data inline, the page's own script last."""
    data = json.dumps({"cases": cases, "colours": CSS_COLOURS}, sort_keys=True).replace("</", "<\\/")
    return PAGE.format(title=html.escape(title), licence=html.escape(licence), library=library,
                       data=data, script=SCRIPT)


def write_viewer(metric_paths, cases_path, library_dir, out_dir, job: ViewerJob) -> None:
    """The page ``index.html`` of one dataset and region in ``out_dir``; its size is logged."""
    library_dir = Path(library_dir)
    cases = viewer_cases(metric_paths, cases_path, job)
    title = f"{job.dataset}, {job.region}: 3D masks of {row_label(job.baseline, '3d')}'s best, median and worst test case"
    text = page(title, (library_dir / BUNDLE).read_text(), (library_dir / LICENCE).read_text(), cases)
    with staged_directory(out_dir) as folder:
        (folder / "index.html").write_text(text)
    log.info("viewer %s / %s: %d case(s) %s, %.2f MB", job.dataset, job.region, len(cases),
             ", ".join(f"{case['case_id']} ({case['reason']})" for case in cases), len(text.encode()) / 1e6)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: sans-serif; background: #111; color: #eee; }}
header {{ padding: 6px 10px; display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }}
#legend label {{ margin-right: 14px; white-space: nowrap; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
#stage {{ width: 100%; height: calc(100vh - 130px); min-height: 480px; }}
#status {{ color: #f66; }}
details {{ padding: 4px 10px; font-size: 12px; }}
</style>
</head>
<body>
<header>
<strong>{title}</strong>
<label>case <select id="case"></select></label>
<label>MRI <select id="background"></select></label>
<span id="views">
<button data-view="axial">axial</button><button data-view="coronal">coronal</button>
<button data-view="sagittal">sagittal</button><button data-view="multiplanar">all planes</button>
<button data-view="render">3D render</button>
</span>
<span id="status"></span>
</header>
<header id="legend"></header>
<div id="stage"><canvas id="viewer"></canvas></div>
<details><summary>NiiVue licence</summary><pre>{licence}</pre></details>
<script>{library}</script>
<script type="application/json" id="viewer-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

SCRIPT = """
"use strict";
const data = JSON.parse(document.getElementById("viewer-data").textContent);
const nv = new niivue.Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, isColorbar: false,
                                   crosshairColor: [1, 1, 0, 1], crosshairWidth: 1 });
const views = { axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal,
                multiplanar: nv.sliceTypeMultiplanar, render: nv.sliceTypeRender };
const caseSelect = document.getElementById("case");
const backgroundSelect = document.getElementById("background");
const legend = document.getElementById("legend");
let shown = [];  // per overlay of the case on screen: visible or not

function layer(nifti, name, colormap, opacity) {
  return niivue.NVImage.loadFromBase64({ base64: nifti, name: name + ".nii.gz", colormap: colormap,
                                         opacity: opacity, cal_min: colormap === "gray" ? NaN : 0.5,
                                         cal_max: colormap === "gray" ? NaN : 1 });
}

function fill(select, items) {
  select.replaceChildren(...items.map((text, index) => new Option(text, String(index))));
}

async function showCase(index, backgroundIndex) {
  const item = data.cases[index];
  fill(backgroundSelect, item.backgrounds.map((b) => b.name));
  backgroundSelect.value = String(backgroundIndex);
  while (nv.volumes.length) nv.removeVolume(nv.volumes[0]);
  const background = item.backgrounds[backgroundIndex];
  nv.addVolume(await layer(background.nifti, background.name, "gray", 1));
  if (shown.length !== item.overlays.length) shown = item.overlays.map(() => true);
  for (const [i, overlay] of item.overlays.entries()) {
    nv.addVolume(await layer(overlay.nifti, "overlay" + i, overlay.colour, shown[i] ? 0.5 : 0));
  }
  nv.scene.crosshairPos = nv.mm2frac(item.centre_mm);
  nv.updateGLVolume();
  legend.replaceChildren(...item.overlays.map((overlay, i) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = shown[i];
    box.dataset.overlay = String(i);
    box.addEventListener("change", () => {
      shown[i] = box.checked;
      nv.setOpacity(i + 1, box.checked ? 0.5 : 0);
      nv.updateGLVolume();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = data.colours[overlay.colour];
    const dice = overlay.dice === null ? "" : ", Dice " + overlay.dice.toFixed(4);
    label.append(box, swatch, overlay.name + dice);
    return label;
  }));
  document.body.dataset.case = item.case_id;
}

async function main() {
  await nv.attachTo("viewer");
  nv.overlayOutlineWidth = 0.25;  // outlined masks: the ground truth and each method stay visible where they overlap
  nv.setSliceType(nv.sliceTypeMultiplanar);
  fill(caseSelect, data.cases.map((c) => c.case_id + " (" + c.reason + ")"));
  caseSelect.addEventListener("change", () => showCase(Number(caseSelect.value), 0));
  backgroundSelect.addEventListener("change", () => showCase(Number(caseSelect.value), Number(backgroundSelect.value)));
  for (const button of document.querySelectorAll("#views button")) {
    button.addEventListener("click", () => nv.setSliceType(views[button.dataset.view]));
  }
  await showCase(0, 0);
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  document.getElementById("status").textContent = "viewer error: " + error;
  console.error(error);
});
"""
