"""BraTS folder layouts, label conventions, case discovery and validation.

Two layouts are supported:

* ``gli``: BraTS 2023/2024 GLI, ``<root>/BraTS-GLI-xxxxx-xxx/BraTS-GLI-xxxxx-xxx-{t1n,t1c,t2w,t2f,seg}.nii.gz``,
  labels 1 NETC, 2 SNFH, 3 ET, 4 RC.
* ``legacy``: the BraTS 2017-2021 family (used for BraTS 2019),
  ``<root>/[HGG|LGG/]<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``, labels 1 NCR/NET, 2 ED, 4 ET.

Case folders are found up to three folder levels below the root, so the root may also be the
folder that contains the training-data folder. ``.nii`` files are accepted beside ``.nii.gz``.
The raw folder is only ever read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .outputs import write_tsv
from .parallel import map_cases

log = logging.getLogger(__name__)

# Tumour regions as BraTS defines them per label convention; "rc" (the 2023/2024 resection
# cavity) exists only in the GLI convention; "any" is the literal "label > 0" reading (the study's
# notebook most likely used it: for BraTS 2024 it counts the resection cavity as tumour).
REGIONS = ("wt", "tc", "et", "rc", "any")
SEG = "seg"
MAX_SEARCH_DEPTH = 3


@dataclass(frozen=True)
class Layout:
    """Naming and label convention of one BraTS release family."""

    name: str
    description: str
    case_pattern: re.Pattern
    separator: str
    modalities: tuple[str, ...]
    labels: frozenset[int]
    region_labels: dict[str, frozenset[int]]
    example_case: str

    def example_file(self) -> str:
        """A seg file as the layout names it, relative to the root."""
        folder = Path(self.example_case)
        return str(folder / f"{folder.name}{self.separator}{SEG}.nii.gz")

    def patient_id(self, case_id: str) -> str:
        """The patient a case belongs to (GLI cases are timepoints ``-xxx`` of a patient)."""
        if self.name == "gli":
            return case_id.rsplit("-", 1)[0]
        return case_id


GLI = Layout(
    name="gli",
    description="BraTS 2023/2024 GLI",
    case_pattern=re.compile(r"^BraTS-GLI-\d{5}-\d{3}$"),
    separator="-",
    modalities=("t1n", "t1c", "t2w", "t2f"),
    labels=frozenset({0, 1, 2, 3, 4}),
    region_labels={
        "wt": frozenset({1, 2, 3}),
        "tc": frozenset({1, 3}),
        "et": frozenset({3}),
        "rc": frozenset({4}),
        "any": frozenset({1, 2, 3, 4}),
    },
    example_case="BraTS-GLI-00000-000",
)

LEGACY = Layout(
    name="legacy",
    description="BraTS 2017-2021 (HGG/LGG)",
    case_pattern=re.compile(r"^brats(\d{2}|20\d{2})_\w+$", re.IGNORECASE),
    separator="_",
    modalities=("flair", "t1", "t1ce", "t2"),
    labels=frozenset({0, 1, 2, 4}),
    region_labels={
        "wt": frozenset({1, 2, 4}),
        "tc": frozenset({1, 4}),
        "et": frozenset({4}),
        "any": frozenset({1, 2, 4}),
    },
    example_case="HGG/BraTS19_2013_2_1",
)

LAYOUTS = {layout.name: layout for layout in (GLI, LEGACY)}

# The same MRI contrast under the names of both layouts.
MODALITY_ALIASES = {
    "t2f": "flair",
    "flair": "t2f",
    "t1c": "t1ce",
    "t1ce": "t1c",
    "t1n": "t1",
    "t1": "t1n",
    "t2w": "t2",
    "t2": "t2w",
}

CASE_COLUMNS = ["case_id", "patient_id", "dataset", "grade"]
INFO_COLUMNS = ["shape", "voxel_size", "tumour_voxels"]


class CaseRejected(ValueError):
    """A case that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class CaseFolder:
    case_id: str
    folder: Path
    grade: str


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown BraTS layout {name!r}; known: {sorted(LAYOUTS)}") from None


def resolve_modality(layout: Layout, modality: str) -> str:
    """The layout's own name for ``modality``, accepting the other layout's name (flair = t2f)."""
    if modality in layout.modalities:
        return modality
    alias = MODALITY_ALIASES.get(modality)
    if alias in layout.modalities:
        return alias
    raise ValueError(
        f"modality {modality!r} does not exist in {layout.description}; "
        f"choose one of {list(layout.modalities)}"
    )


def resolve_contrasts(layout: Layout, contrasts) -> list[str]:
    """The layout's names of one contrast or of a list of one or three (an image's channels)."""
    names = [contrasts] if isinstance(contrasts, str) else list(contrasts)
    if len(names) not in (1, 3):
        raise ValueError(f"contrasts {names}: one contrast, or three (an image's channels)")
    return [resolve_modality(layout, name) for name in names]


def region_mask(seg: np.ndarray, layout: Layout, region: str) -> np.ndarray:
    """Binary mask of a tumour region (see ``REGIONS``) of a seg in the layout's labels."""
    if region not in layout.region_labels:
        raise ValueError(f"region {region!r} does not exist in the {layout.description} label convention; "
                         f"choose one of {list(layout.region_labels)}")
    lookup = np.zeros(max(layout.labels) + 1, dtype=bool)
    lookup[sorted(layout.region_labels[region])] = True
    return lookup[seg]


def find_case_folders(root: Path, layout: Layout) -> list[CaseFolder]:
    """Case folders below ``root`` (depth <= 3, symlinked folders followed), sorted by case id;
    grade from the nearest HGG/LGG folder above the case."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BraTS folder {root} does not exist or is not a folder")
    found: list[CaseFolder] = []
    # The depth limit also ends any cycle of symlinks.
    for current, dirs, _files in os.walk(root, followlinks=True):
        depth = len(Path(current).relative_to(root).parts)
        dirs.sort()
        keep = []
        for name in dirs:
            if name.startswith("."):
                continue
            if layout.case_pattern.match(name):
                grades = [part.upper() for part in Path(current).relative_to(root).parts
                          if part.upper() in ("HGG", "LGG")]
                grade = grades[-1] if grades else ""
                found.append(CaseFolder(name, Path(current) / name, grade))
            elif depth + 1 < MAX_SEARCH_DEPTH:
                keep.append(name)
        dirs[:] = keep
    return sorted(found, key=lambda case: (case.case_id, str(case.folder)))


def raw_files(root: Path, layout: Layout) -> list[str]:
    """Every file in every case folder below ``root``: what case discovery reads, so that a case
    added or removed, or a file replaced, makes Snakemake rerun it."""
    files = []
    for case in find_case_folders(root, layout):
        with os.scandir(case.folder) as entries:
            files += [entry.path for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    return sorted(files)


def what_is_there(root: Path, expected: Layout) -> str:
    """The case folders of other layouts below ``root``, or the first entries, for an error message."""
    for layout in LAYOUTS.values():
        if layout is expected:
            continue
        others = find_case_folders(root, layout)
        if others:
            return (f"found instead {len(others)} folder(s) named like {layout.description} cases "
                    f"(e.g. {others[0].folder}): is layout {layout.name!r} meant?")
    entries = sorted(entry.name for entry in Path(root).iterdir())
    if not entries:
        return "the folder is empty"
    return f"found instead: {', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}"


def no_case_folders(root: Path, layout: Layout, dataset: str) -> CaseRejected:
    return CaseRejected(
        f"no {dataset} case folder below {root}: layout {layout.name!r} ({layout.description}) expects "
        f"case folders like {layout.example_file()} up to {MAX_SEARCH_DEPTH} levels below the root; "
        f"{what_is_there(root, layout)}"
    )


def unique_cases(cases: list[CaseFolder]) -> tuple[list[CaseFolder], list[dict]]:
    """One folder per case id: a second copy in the same grade is rejected, and a case id under
    both HGG/ and LGG/ is rejected altogether (its grade is unknown)."""
    by_id: dict[str, list[CaseFolder]] = {}
    for case in cases:
        by_id.setdefault(case.case_id, []).append(case)
    unique, rejected = [], []
    for case_id, copies in by_id.items():
        grades = sorted({copy.grade for copy in copies})
        folders = " and ".join(str(copy.folder) for copy in copies)
        if len(grades) > 1:
            rejected.append({"case_id": case_id,
                             "reason": f"grade conflict: the case is under both {' and '.join(grades)}: {folders}"})
            continue
        unique.append(copies[0])
        if len(copies) > 1:
            rejected.append({"case_id": case_id, "reason": f"duplicate case id: {folders} (the first is used)"})
    return unique, rejected


def case_file(case: CaseFolder, layout: Layout, name: str) -> Path:
    """Path of a case's modality or seg file, ``.nii.gz`` preferred over ``.nii``."""
    stem = f"{case.case_id}{layout.separator}{name}"
    for suffix in (".nii.gz", ".nii"):
        path = case.folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise CaseRejected(f"missing {name}: no {stem}.nii.gz or {stem}.nii in {case.folder}")


def save_mask(mask: np.ndarray, reference: nib.Nifti1Image, out_path) -> None:
    """A binary mask as uint8 NIfTI with ``reference``'s affine and header."""
    out = nib.Nifti1Image(mask.astype(np.uint8), reference.affine, reference.header)
    out.set_data_dtype(np.uint8)
    nib.save(out, out_path)


def read_volume(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a NIfTI image and its full voxel array (detects truncated or corrupt files)."""
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many kinds for broken files
        raise CaseRejected(f"unreadable {path}: {type(err).__name__}: {err}") from err
    if data.ndim != 3:
        raise CaseRejected(f"{path} has shape {data.shape}, expected a 3D volume")
    return image, data


def integer_labels(seg: np.ndarray, path: Path) -> np.ndarray:
    """Labels as int16; a float seg is accepted only if every value is an integer."""
    if np.issubdtype(seg.dtype, np.integer):
        return seg.astype(np.int16)
    if not np.all(np.isfinite(seg)) or not np.array_equal(seg, np.round(seg)):
        bad = np.unique(seg[~np.isfinite(seg) | (seg != np.round(seg))])[:5]
        raise CaseRejected(f"non-integral label values {bad.tolist()} in {path}")
    if seg.min() < np.iinfo(np.int16).min or seg.max() > np.iinfo(np.int16).max:
        raise CaseRejected(f"label values out of range in {path}")
    return seg.astype(np.int16)


def load_labels(path: Path, layout: Layout) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Read a seg file and check it against the layout's label convention."""
    image, raw = read_volume(path)
    seg = integer_labels(raw, path)
    lowest = int(seg.min())
    present = np.flatnonzero(np.bincount((seg.ravel(order="K") - lowest).astype(np.intp))) + lowest
    foreign = sorted(set(present.tolist()) - layout.labels)
    if foreign:
        raise CaseRejected(
            f"labels {foreign} outside the {layout.description} convention "
            f"{sorted(layout.labels)} in {path}"
        )
    return image, seg


def inspect_case(case: CaseFolder, layout: Layout, dataset: str) -> dict:
    """Validate one case and return its row for the case table; raises CaseRejected."""
    paths = {name: case_file(case, layout, name) for name in (*layout.modalities, SEG)}
    seg_image, seg = load_labels(paths[SEG], layout)
    tumour_voxels = int(np.count_nonzero(seg))
    if tumour_voxels == 0:
        raise CaseRejected(f"no tumour: every label is 0 in {paths[SEG]}")
    for name in layout.modalities:
        image, data = read_volume(paths[name])
        if data.shape != seg.shape:
            raise CaseRejected(
                f"shape {data.shape} of {paths[name]} differs from {seg.shape} of {paths[SEG]}"
            )
        if not np.allclose(image.affine, seg_image.affine, atol=1e-3):
            raise CaseRejected(f"affine of {paths[name]} differs from that of {paths[SEG]}")
        if not np.all(np.isfinite(data)):
            raise CaseRejected(f"non-finite intensities in {paths[name]}")
        if data.min() == data.max():
            raise CaseRejected(f"no signal: every voxel of {paths[name]} is {data.flat[0]:g}")
    zooms = seg_image.header.get_zooms()[:3]
    return {
        "case_id": case.case_id,
        "patient_id": layout.patient_id(case.case_id),
        "dataset": dataset,
        "grade": case.grade,
        **{name: str(path) for name, path in paths.items()},
        "shape": "x".join(str(n) for n in seg.shape),
        "voxel_size": "x".join(f"{z:g}" for z in zooms),
        "tumour_voxels": tumour_voxels,
    }


def _inspect_or_reason(args: tuple[CaseFolder, Layout, str]) -> dict:
    case, layout, dataset = args
    try:
        return inspect_case(case, layout, dataset)
    except CaseRejected as err:
        return {"case_id": case.case_id, "reason": str(err)}


def discover(
    root: Path, layout: Layout, dataset: str, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All cases below ``root``: (accepted case table, rejected table with reasons)."""
    cases = find_case_folders(root, layout)
    log.info("%s: %d case folders found below %s", dataset, len(cases), root)
    if not cases:
        raise no_case_folders(root, layout, dataset)
    accepted: list[dict] = []
    unique, rejected = unique_cases(cases)
    jobs = [(case, layout, dataset) for case in unique]
    results = map_cases(_inspect_or_reason, jobs, workers, f"validating {dataset} cases")
    for row in results:
        (rejected if "reason" in row else accepted).append(row)
    rejected.sort(key=lambda row: row["case_id"])
    for row in rejected:
        log.warning("rejected %s: %s", row["case_id"], row["reason"])
    columns = CASE_COLUMNS + [*layout.modalities, SEG] + INFO_COLUMNS
    return (
        pd.DataFrame(accepted, columns=columns),
        pd.DataFrame(rejected, columns=["case_id", "reason"]),
    )


def write_case_tables(
    root: str | Path,
    layout_name: str,
    dataset: str,
    cases_path: str | Path,
    rejected_path: str | Path,
    strict: bool = False,
    workers: int = 1,
) -> None:
    """Discover and validate ``root``; write the case table and the rejected table."""
    accepted, rejected = discover(Path(root), get_layout(layout_name), dataset, workers)
    if strict and not rejected.empty:
        first = rejected.iloc[0]
        raise CaseRejected(
            f"strict: {len(rejected)} {dataset} case(s) rejected, first {first.case_id}: {first.reason}"
        )
    if accepted.empty:
        raise CaseRejected(f"no usable {dataset} case below {root} ({len(rejected)} rejected)")
    log.info("%s: %d cases accepted, %d rejected", dataset, len(accepted), len(rejected))
    write_tsv(accepted, cases_path)
    write_tsv(rejected, rejected_path)
