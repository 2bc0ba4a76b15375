"""2D slice datasets: per case the axial slice with the largest tumour area (the study's key slice),
or slices sampled from the whole volume (tumour slices with their boxes, tumour-free ones as
background images for the detector), each with its mask and box.

Conventions, used by every method:

* Volumes are indexed ``[i, j, k]`` as stored in the NIfTI file; axial slices run along ``k``.
* The key slice is the one with the largest tumour area; ties go to the lowest ``k``.
* A slice set's index names each slice (``sample``): the case for a key slice, ``{case}_k{k:03d}``
  for a sampled one; a background slice has area 0 and no box.
* A 2D slice is ``volume[:, :, k].T``: row = ``j``, column = ``i``.
* Boxes are ``x0, y0, x1, y1`` in pixels, inclusive, with x = column and y = row.
* Intensities are normalised per volume: clipped to the given percentiles of the brain voxels
  (non-zero voxels of the skull-stripped volume), scaled to [0, 1]; background stays 0.
* A slice shows one contrast ([H, W]) or three as the channels of one image ([H, W, 3]), each
  normalised by its own volume (``contrasts`` of the config, per region).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .brats import Layout, get_layout, load_labels, read_volume, region_mask, resolve_contrasts
from .outputs import read_tsv, staged_directory, write_tsv
from .parallel import map_cases

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["sample", "case_id", "split", "slice_index", "area", "x0", "y0", "x1", "y1"]
# What a 2D model trains on, as the comparison names it: the study's key slices, or sampled ones.
SLICE_SETS = {"key_slice": "key slices (largest-area slice per case)",
              "volume_slices": "slices sampled from the volumes"}


@dataclass(frozen=True)
class VolumeSampling:
    """Which axial slices of a case the ``volume_slices`` set takes: ``tumour_per_case`` slices that
    hold the region (None: every one) and ``background_per_case`` tumour-free slices that show brain,
    drawn without replacement by a generator fixed by ``seed`` and the case."""

    tumour_per_case: int | None
    background_per_case: int
    seed: int

    def indices(self, case_id: str, mask: np.ndarray, brain: np.ndarray) -> list[int]:
        """Sorted slice indices ``k`` of one case; ``mask`` and ``brain``: its region's and its brain's
        3D masks."""
        areas = np.count_nonzero(mask, axis=(0, 1))
        tumour = np.flatnonzero(areas > 0)
        background = np.flatnonzero((areas == 0) & brain.any(axis=(0, 1)))
        rng = case_rng(self.seed, case_id)
        chosen = [int(k) for k in tumour] if self.tumour_per_case is None else draw(tumour, self.tumour_per_case, rng)
        return sorted(chosen + draw(background, self.background_per_case, rng))


def draw(indices: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` of ``indices`` (all of them if fewer), without replacement."""
    if len(indices) <= count:
        return [int(k) for k in indices]
    return [int(k) for k in rng.choice(indices, size=count, replace=False)]


@dataclass(frozen=True)
class SliceSample:
    case_id: str
    slice_index: int
    image: np.ndarray  # float32 [H, W] (one contrast) or [H, W, 3] (three) in [0, 1]
    mask: np.ndarray  # uint8 [H, W] in {0, 1}
    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 inclusive; None on a background slice
    spacing: tuple[float, float] = (1.0, 1.0)  # mm per row, mm per column
    name: str | None = None  # its file name in a slice set: the case (key slice) or {case}_k{k:03d}

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def sample(self) -> str:
        return self.name or self.case_id


def largest_area_slice(mask: np.ndarray) -> tuple[int, int]:
    """(k, area) of the axial slice with the most mask voxels; ties go to the lowest k."""
    areas = np.count_nonzero(mask, axis=(0, 1))
    k = int(np.argmax(areas))
    return k, int(areas[k])


def axial_slice(volume: np.ndarray, k: int) -> np.ndarray:
    """Slice ``k`` as a 2D image with row = j and column = i."""
    return np.ascontiguousarray(volume[:, :, k].T)


def axial_spacing(zooms) -> tuple[float, float]:
    """Pixel size in mm (row, column) of an axial slice of a volume with voxel size ``zooms``."""
    return float(zooms[1]), float(zooms[0])


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive bounding box ``x0, y0, x1, y1`` (x = column) of a non-empty 2D mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("tight_box of an empty mask")
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def intensity_range(volume: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Percentiles of the non-zero (brain) voxels of a volume; (0, 1) for an empty volume."""
    brain = volume[volume != 0]
    if brain.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(brain, percentiles)
    return float(low), float(high)


def normalise(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and scale to [0, 1]; zero (background) voxels stay 0."""
    image = np.asarray(image, dtype=np.float32)
    scaled = np.clip((image - low) / max(high - low, 1e-8), 0, 1)
    return np.where(image != 0, scaled, 0).astype(np.float32)


def extract_slice(
    case_id: str,
    image_paths,
    seg_path: Path,
    layout: Layout,
    region: str,
    percentiles: tuple[float, float],
) -> SliceSample:
    """The largest-area axial slice of one case, normalised, with its mask and box; ``image_paths``:
    the volume of one contrast, or those of three (the image's channels, in that order)."""
    mask3d, spacing = region_volume(seg_path, layout, region)
    k, area = largest_area_slice(mask3d)
    if area == 0:
        raise ValueError(f"{case_id}: region {region!r} is empty in {seg_path}")
    image = contrast_slice(contrast_paths(image_paths), k, percentiles)
    mask = axial_slice(mask3d, k).astype(np.uint8)
    return SliceSample(case_id, k, image, mask, tight_box(mask), spacing)


def contrast_paths(image_paths) -> list:
    """One contrast's volume path, or a list of them, as a list."""
    return [image_paths] if isinstance(image_paths, (str, Path)) else list(image_paths)


def region_volume(seg_path, layout: Layout, region: str) -> tuple[np.ndarray, tuple[float, float]]:
    """A case's 3D mask of the region and the pixel size (row, column) of its axial slices."""
    seg_image, seg = load_labels(Path(seg_path), layout)
    return region_mask(seg, layout, region), axial_spacing(seg_image.header.get_zooms())


def extract_sampled(
    case_id: str,
    image_paths,
    seg_path: Path,
    layout: Layout,
    region: str,
    percentiles: tuple[float, float],
    sampling: VolumeSampling,
) -> list[SliceSample]:
    """The slices ``sampling`` takes from one case (tumour slices with their tight boxes, background
    slices without a box), normalised by their volumes like the key slice; none if the case has
    neither."""
    mask3d, spacing = region_volume(seg_path, layout, region)
    volumes = read_volumes(contrast_paths(image_paths))
    images = normalised_slices(volumes, percentiles)
    brain = volumes[0] != 0
    samples = []
    for k in sampling.indices(case_id, mask3d, brain):
        mask = axial_slice(mask3d, k).astype(np.uint8)
        box = tight_box(mask) if mask.any() else None
        samples.append(SliceSample(case_id, k, images[k], mask, box, spacing, f"{case_id}_k{k:03d}"))
    return samples


def slice_image(image_path, k: int, percentiles: tuple[float, float]) -> np.ndarray:
    """Axial slice ``k`` of a volume, normalised by the whole volume's brain percentiles."""
    _, volume = read_volume(Path(image_path))
    return normalise(axial_slice(volume, k), *intensity_range(volume, percentiles))


def contrast_image(images: list[np.ndarray]) -> np.ndarray:
    """One slice's image from its contrasts' slices: one contrast [H, W], three as channels [H, W, 3]."""
    return images[0] if len(images) == 1 else np.stack(images, axis=-1)


def contrast_slice(image_paths, k: int, percentiles: tuple[float, float]) -> np.ndarray:
    """Slice ``k`` of one contrast [H, W], or of three as one image's channels [H, W, 3]."""
    return contrast_image([slice_image(path, k, percentiles) for path in image_paths])


def volume_slices(image_paths, percentiles) -> list[np.ndarray]:
    """Every axial slice of a case as the 2D methods see it (the volume protocol): [H, W] for one
    contrast, [H, W, 3] for three, each contrast normalised by its own volume (as ``contrast_slice``)."""
    return normalised_slices(read_volumes(image_paths), percentiles)


def read_volumes(image_paths) -> list[np.ndarray]:
    """The voxels of each contrast's volume."""
    return [read_volume(Path(path))[1] for path in image_paths]


def normalised_slices(volumes: list[np.ndarray], percentiles) -> list[np.ndarray]:
    """Every axial slice of a case's contrast volumes, each volume normalised by its own brain
    percentiles: [H, W] for one contrast, [H, W, 3] for three."""
    normalised = [normalise(volume, *intensity_range(volume, percentiles)) for volume in volumes]
    return [contrast_image([axial_slice(volume, k) for volume in normalised]) for k in range(volumes[0].shape[2])]


def eight_bit(image: np.ndarray) -> np.ndarray:
    """A [0, 1] slice as 8-bit pixels (what its PNG holds)."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """A [0, 1] slice as the 8-bit RGB image SAM's processor and the detector take: one contrast
    [H, W] in all three channels, three contrasts [H, W, 3] one per channel."""
    pixels = eight_bit(image)
    return pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)


NO_BOX = (-1, -1, -1, -1)  # a background slice's box in its npz


def save_sample(sample: SliceSample, folder: Path) -> None:
    """``{sample}.npz`` (image, mask, box, slice index) and an 8-bit ``{sample}.png`` for detectors
    (grey for one contrast, RGB for three)."""
    np.savez_compressed(
        folder / f"{sample.sample}.npz",
        image=sample.image,
        mask=sample.mask,
        box=np.asarray(sample.box or NO_BOX, dtype=np.int32),
        slice_index=np.int32(sample.slice_index),
        spacing=np.asarray(sample.spacing, dtype=np.float64),
    )
    pixels = eight_bit(sample.image)
    Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB").save(folder / f"{sample.sample}.png")


def load_sample(folder: Path, sample: str, case_id: str | None = None) -> SliceSample:
    """A slice of a slice set by its name (``case_id``: its case, where the name is not the case)."""
    with np.load(Path(folder) / f"{sample}.npz") as data:
        box = tuple(int(v) for v in data["box"])
        return SliceSample(
            case_id or sample,
            int(data["slice_index"]),
            data["image"],
            data["mask"],
            None if box == NO_BOX else box,
            tuple(float(v) for v in data["spacing"]),
            None if case_id in (None, sample) else sample,
        )


def _extract_and_save(args) -> list[dict]:
    case_id, image_path, seg_path, layout, region, percentiles, sampling, folder = args
    try:
        if sampling is None:
            samples = [extract_slice(case_id, image_path, seg_path, layout, region, percentiles)]
        else:
            samples = extract_sampled(case_id, image_path, seg_path, layout, region, percentiles, sampling)
    except ValueError as err:
        return [{"case_id": case_id, "reason": str(err)}]
    rows = []
    for sample in samples:
        save_sample(sample, folder)
        rows.append({"sample": sample.sample, "case_id": case_id, "slice_index": sample.slice_index,
                     "area": sample.area, **dict(zip(("x0", "y0", "x1", "y1"), sample.box or (None,) * 4))})
    return rows


def build_slice_dataset(
    cases: pd.DataFrame,
    splits: pd.DataFrame,
    folder: Path,
    layout: Layout,
    contrasts: list[str],
    region: str,
    percentiles: tuple[float, float],
    workers: int = 1,
    sampling: VolumeSampling | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write every case's key slice (``sampling`` None) or sampled slices of ``contrasts`` (the
    layout's names of one or three) into ``folder``; return (index table, skipped cases with reasons)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (row.case_id, [row[name] for name in contrasts], row.seg, layout, region, tuple(percentiles), sampling,
         folder)
        for _, row in cases.iterrows()
    ]
    rows = [row for case_rows in map_cases(_extract_and_save, jobs, workers, "extracting slices") for row in case_rows]
    skipped = pd.DataFrame([r for r in rows if "reason" in r], columns=["case_id", "reason"])
    for row in skipped.itertuples():
        log.warning("skipped %s: %s", row.case_id, row.reason)
    columns = [name for name in INDEX_COLUMNS if name != "split"]
    index = pd.DataFrame([r for r in rows if "reason" not in r], columns=columns)
    index[["x0", "y0", "x1", "y1"]] = index[["x0", "y0", "x1", "y1"]].astype("Int64")  # a background slice: empty
    index = index.merge(splits[["case_id", "split"]], on="case_id", how="left")
    return index[INDEX_COLUMNS].sort_values("sample").reset_index(drop=True), skipped


def write_slice_dataset(
    cases_path,
    splits_path,
    out_dir,
    layout_name: str,
    contrasts,
    region: str,
    percentiles,
    workers: int = 1,
    sampling: dict | None = None,
) -> None:
    """Build the slice folder (npz, png, index.tsv, skipped.tsv) of one contrast or a list of one or
    three (either layout's names): key slices, or the slices ``sampling`` (VolumeSampling's fields)
    takes; it appears only when complete."""
    layout = get_layout(layout_name)
    with staged_directory(out_dir) as folder:
        index, skipped = build_slice_dataset(
            read_tsv(cases_path),
            read_tsv(splits_path),
            folder,
            layout,
            resolve_contrasts(layout, contrasts),
            region,
            tuple(percentiles),
            workers,
            None if sampling is None else VolumeSampling(**sampling),
        )
        if index.empty:
            raise ValueError(f"no case has a non-empty {region!r} region ({len(skipped)} skipped)")
        write_tsv(index, folder / "index.tsv")
        write_tsv(skipped, folder / "skipped.tsv")
        log.info("%d slices written (%d without the region), %d cases skipped", len(index),
                 int((index.area == 0).sum()), len(skipped))


def jitter_box(
    box: tuple[int, int, int, int], pixels: int, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """Move each box coordinate by a uniform integer in [-pixels, pixels], clipped to the image.

    ``shape`` is (rows, columns). A coordinate pair that crosses over is swapped, so the box stays
    valid (x0 <= x1, y0 <= y1).
    """
    moved = np.asarray(box) + rng.integers(-pixels, pixels + 1, size=4)
    height, width = shape
    x0, x1 = sorted(np.clip(moved[[0, 2]], 0, width - 1).tolist())
    y0, y1 = sorted(np.clip(moved[[1, 3]], 0, height - 1).tolist())
    return int(x0), int(y0), int(x1), int(y1)


def seeded_jitter(box, pixels: int, shape: tuple[int, int], seed: int, case_id: str) -> tuple[int, int, int, int]:
    """The evaluation jitter of a case: the same box for the same seed, case and pixel level."""
    return jitter_box(box, pixels, shape, case_rng(seed, case_id, pixels))


def case_rng(seed: int, case_id: str, *streams: int) -> np.random.Generator:
    """A generator fixed by the seed, the case and further stream numbers (same boxes on rerun)."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode()), *streams])


def load_split(folder: str | Path, split: str) -> list[SliceSample]:
    """Every slice of one split of a slice folder that holds the region (what a segmentation model
    trains and is scored on; background slices are the detector's), in name order."""
    index = read_tsv(Path(folder) / "index.tsv")
    rows = index[(index.split == split) & (index.area > 0)]
    return [load_sample(folder, row.sample, row.case_id) for row in rows.itertuples()]
