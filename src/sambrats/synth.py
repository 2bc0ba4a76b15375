"""Synthetic BraTS cohort written in the real folder layouts and label conventions.

Each case is a head-like brain ellipsoid (white and grey matter texture, ventricles, a bias field)
with a glioma made of a necrotic / non-enhancing core, an enhancing rim and surrounding oedema,
imaged in four contrasts: oedema bright on FLAIR and T2, the rim bright on T1c, CSF dark on FLAIR.
Everything is drawn from ``numpy.random.default_rng([seed, layout stream, case index])``, so a cohort is fully
determined by its parameters. Optional broken cases exercise every rejection path of discovery.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .brats import GLI, LEGACY, Layout
from .progress import progress

log = logging.getLogger(__name__)

TISSUES = ("background", "csf", "grey", "white", "oedema", "necrosis", "enhancing", "cavity", "lesion", "lesion_core")
T = {name: index for index, name in enumerate(TISSUES)}
LESION_TISSUES = (T["lesion"], T["lesion_core"])

# Mean relative intensity of each tissue per contrast (columns follow TISSUES).
# "lesion" and "lesion_core" make unlabelled tumour look-alikes (other lesions, as in multifocal
# disease or a metastasis): on FLAIR and T2 a bright rim around a darker core like the glioma's, a
# fainter enhancement on T1c, so that on a FLAIR slice only the prompt tells the tumour apart.
CONTRAST = {
    "t1n": [0.0, 0.25, 0.55, 0.75, 0.40, 0.30, 0.55, 0.20, 0.45, 0.30],
    "t1c": [0.0, 0.25, 0.55, 0.75, 0.40, 0.30, 1.40, 0.20, 0.90, 0.30],
    "t2w": [0.0, 1.00, 0.60, 0.40, 0.85, 0.90, 0.70, 0.95, 0.85, 0.90],
    "t2f": [0.0, 0.15, 0.55, 0.45, 0.95, 0.60, 0.75, 0.20, 0.90, 0.65],
}
# Contrast of each layout modality name.
CONTRAST_OF = {"t1n": "t1n", "t1c": "t1c", "t2w": "t2w", "t2f": "t2f",
               "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
LABEL_OF = {
    "gli": {"oedema": 2, "necrosis": 1, "enhancing": 3, "cavity": 4},
    "legacy": {"oedema": 2, "necrosis": 1, "enhancing": 4},
}
BROKEN_KINDS = ("missing_seg", "truncated_image", "foreign_labels", "no_tumour", "shape_mismatch")
AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])
# Separate random streams per layout, so the two demo cohorts differ for the same seed.
STREAM = {"gli": 1, "legacy": 2}


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-8)


def ellipsoid_distance(shape, centre, radii) -> np.ndarray:
    """Normalised ellipsoid distance: < 1 inside the ellipsoid."""
    axes = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((ax - c) / r) ** 2 for ax, c, r in zip(axes, centre, radii)))


def add_lesions(tissue, brain, tumour, centre, radius: float, count: int, rng: np.random.Generator) -> None:
    """Up to ``count`` unlabelled look-alike lesions (rim and core) beside the tumour, at its height, a
    little smaller than it."""
    shape = tissue.shape
    for _ in range(count):
        for _attempt in range(20):
            size = radius * rng.uniform(0.5, 0.9)
            angle = rng.uniform(0, 2 * np.pi)
            reach = (radius + size) * rng.uniform(1.3, 2.2)
            spot = centre + np.array([reach * np.cos(angle), reach * np.sin(angle), rng.uniform(-0.4, 0.4) * radius])
            distance = ellipsoid_distance(shape, spot, size * rng.uniform(0.8, 1.2, 3))
            lesion = distance < 1
            if lesion.sum() and (brain[lesion].mean() > 0.95) and not (lesion & tumour).any():
                tissue[lesion] = T["lesion"]
                tissue[distance < rng.uniform(0.35, 0.6)] = T["lesion_core"]
                break


def synth_tissues(shape, rng: np.random.Generator, grade: str, cavity: bool, lesions: int = 0) -> np.ndarray:
    """Tissue class map (indices into TISSUES) of one synthetic head with a tumour and ``lesions``
    unlabelled look-alike lesions at most."""
    shape = tuple(int(n) for n in shape)
    dims = np.array(shape, dtype=float)
    centre = dims / 2 + rng.uniform(-0.03, 0.03, 3) * dims
    brain_radii = dims * rng.uniform([0.38, 0.42, 0.40], [0.44, 0.47, 0.46])
    wobble = smooth_noise(rng, shape, sigma=max(2.0, min(shape) / 12))
    brain = ellipsoid_distance(shape, centre, brain_radii) + 0.04 * wobble < 1
    tissue = np.zeros(shape, dtype=np.uint8)
    texture = smooth_noise(rng, shape, sigma=max(1.0, min(shape) / 40))
    tissue[brain] = np.where(texture[brain] > -0.2, T["white"], T["grey"])
    for side in (-1, 1):
        vent_centre = centre + np.array([side * 0.08, -0.05, 0.05]) * dims
        ventricle = ellipsoid_distance(shape, vent_centre, dims * [0.04, 0.12, 0.08]) < 1
        tissue[ventricle & brain] = T["csf"]

    # Tumour: deformed nested ellipsoids inside the brain.
    offset = rng.uniform(-0.5, 0.5, 3) * brain_radii
    tumour_centre = centre + offset
    size = rng.uniform(0.09, 0.16) * dims[:2].min()  # in-plane radius: 18-32 % of the field of view across
    radii = size * rng.uniform(0.75, 1.25, 3) * [1, 1, dims[2] / dims[:2].min()]
    deform = 1 + 0.18 * smooth_noise(rng, shape, sigma=max(1.5, size / 3))
    distance = ellipsoid_distance(shape, tumour_centre, radii) * deform
    core_fraction = rng.uniform(0.35, 0.6)
    rim = rng.uniform(0.12, 0.25)
    oedema = brain & (distance < 1)
    core = brain & (distance < core_fraction)
    tissue[oedema] = T["oedema"]
    if grade == "LGG" and rng.random() < 0.5:
        tissue[core] = T["necrosis"]  # non-enhancing low-grade core
    else:
        tissue[core] = T["enhancing"]
        tissue[brain & (distance < core_fraction * (1 - rim))] = T["necrosis"]
    if lesions:
        add_lesions(tissue, brain, distance < 1.3, tumour_centre, float(radii.mean()),
                    int(rng.integers(1, lesions + 1)), rng)
    if cavity:
        cavity_centre = tumour_centre + radii * rng.choice([-1, 1], 3) * 0.9
        hole = brain & (ellipsoid_distance(shape, cavity_centre, radii * 0.35) < 1)
        tissue[hole] = T["cavity"]
    return tissue


def synth_images(tissue: np.ndarray, modalities, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Intensity volumes of every modality for a tissue map (scale differs per case)."""
    brain = tissue > 0
    bias = 1 + 0.08 * smooth_noise(rng, tissue.shape, sigma=max(3.0, min(tissue.shape) / 6))
    images = {}
    for name in modalities:
        means = np.asarray(CONTRAST[CONTRAST_OF[name]], dtype=np.float32)
        texture = smooth_noise(rng, tissue.shape, sigma=1.0)
        image = means[tissue] * (1 + 0.06 * texture) * bias
        image = ndimage.gaussian_filter(image, 0.6)
        image += 0.02 * rng.standard_normal(tissue.shape).astype(np.float32)
        scale = rng.uniform(200, 3000)
        images[name] = np.where(brain, np.clip(image, 0.001, None) * scale, 0).astype(np.float32)
    return images


def labels_from_tissues(tissue: np.ndarray, layout: Layout) -> np.ndarray:
    seg = np.zeros(tissue.shape, dtype=np.uint8)
    for name, label in LABEL_OF[layout.name].items():
        seg[tissue == T[name]] = label
    return seg


def case_ids(layout: Layout, n_cases: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(case id, grade) pairs; GLI patients sometimes have a second timepoint."""
    if layout.name == "gli":
        ids: list[tuple[str, str]] = []
        patient = 0
        while len(ids) < n_cases:
            ids.append((f"BraTS-GLI-{patient:05d}-000", ""))
            if len(ids) < n_cases and rng.random() < 0.25:
                ids.append((f"BraTS-GLI-{patient:05d}-001", ""))
            patient += 1
        return ids
    n_hgg = int(round(0.7 * n_cases))
    return [
        (f"BraTS19_SYN_{index:04d}_1", "HGG" if index < n_hgg else "LGG")
        for index in range(n_cases)
    ]


def case_folder(root: Path, layout: Layout, case_id: str, grade: str) -> Path:
    return root / grade / case_id if layout.name == "legacy" else root / case_id


def write_nifti(array: np.ndarray, path: Path, layout: Layout, is_seg: bool) -> None:
    """Store like the real releases: GLI float32 (seg too), legacy int16 images and uint8 seg."""
    if layout.name == "gli":
        dtype = np.float32
    else:
        dtype = np.uint8 if is_seg else np.int16
    image = nib.Nifti1Image(np.asarray(array, dtype=dtype), AFFINE)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)


def synth_case(shape, seed: int, layout: Layout, index: int, grade: str, cavity: bool, lesions: int,
               modalities) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Tissue map and images of case ``index`` of a cohort: the same arguments, the same case."""
    rng = np.random.default_rng([seed, STREAM[layout.name], index])
    tissue = synth_tissues(shape, rng, grade, cavity, lesions)
    return tissue, synth_images(tissue, modalities, rng)


def write_case(root: Path, layout: Layout, case_id: str, grade: str, shape, seed: int,
               index: int, broken: str | None = None, lesions: int = 0) -> Path:
    """Write one case (optionally broken in a named way) and return its folder."""
    cavity = layout.name == "gli" and case_id.endswith("-001")
    tissue, images = synth_case(shape, seed, layout, index, grade, cavity, lesions, layout.modalities)
    seg = labels_from_tissues(tissue, layout)
    if broken == "no_tumour":
        seg[:] = 0
    elif broken == "foreign_labels":
        seg[seg == seg.max()] = 7
    elif broken == "shape_mismatch":
        first = layout.modalities[0]
        images[first] = images[first][:, :, :-1]
    folder = case_folder(root, layout, case_id, grade)
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        write_nifti(image, folder / f"{case_id}{layout.separator}{name}.nii.gz", layout, False)
    if broken != "missing_seg":
        write_nifti(seg, folder / f"{case_id}{layout.separator}seg.nii.gz", layout, True)
    if broken == "truncated_image":
        path = folder / f"{case_id}{layout.separator}{layout.modalities[-1]}.nii.gz"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return folder


def broken_case_id(layout: Layout, index: int) -> tuple[str, str]:
    if layout.name == "gli":
        return f"BraTS-GLI-{90000 + index:05d}-000", ""
    return f"BraTS19_BROKEN_{index:04d}_1", "HGG"


def write_cohort(root: str | Path, layout: Layout, n_cases: int, shape, seed: int,
                 broken: list[str] | tuple[str, ...] = (), lesions: int = 0) -> list[Path]:
    """Write ``n_cases`` valid cases (each with up to ``lesions`` look-alike lesions) and one case
    per broken kind below ``root``."""
    unknown = set(broken) - set(BROKEN_KINDS)
    if unknown:
        raise ValueError(f"unknown broken case kinds {sorted(unknown)}; known: {BROKEN_KINDS}")
    root = Path(root)
    ids = case_ids(layout, n_cases, np.random.default_rng([seed, 0]))
    jobs = [(case_id, grade, None) for case_id, grade in ids]
    jobs += [(*broken_case_id(layout, i), kind) for i, kind in enumerate(broken)]
    folders = []
    for index, (case_id, grade, kind) in enumerate(progress(jobs, f"writing {layout.name} cohort", "case")):
        folders.append(write_case(root, layout, case_id, grade, shape, seed, index, kind, lesions))
    log.info("wrote %d synthetic %s cases (%d broken) to %s", len(jobs), layout.description, len(broken), root)
    return folders
