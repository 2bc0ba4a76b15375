"""MedSAM-2 on one full-size volume: seconds per volume and per slice, peak memory, against the
image encoder alone on the same frames, in the same batches (the ratio is what memory and
propagation add).

    .venv/bin/python benchmarks/medsam2_volume.py [--image-size 512] [--slices 155]

(The test suite runs it at `--image-size 64 --slices 3`, only to prove that it runs.)

Uses the real BraTS 2019 case in ../shared/data/real when present, else a synthetic 240x240x155
case; random sam2.1_hiera_t weights (timing does not depend on them). Measured in one run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sambrats import medsam2
from sambrats.brats import LEGACY, discover, load_labels, read_volume, region_mask
from sambrats.devices import resolve_device
from sambrats.slices import axial_slice, largest_area_slice, tight_box
from sambrats.synth import write_cohort

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "BraTS2019"


def benchmark_volume(tmp: Path, slices: int):
    """The T1ce volume of the real BraTS 2019 case (a synthetic 240x240x155 one without it), cut to
    ``slices`` axial slices around its key slice; the key slice, its whole-tumour box and the whole
    tumour's mask."""
    root = REAL if REAL.is_dir() else tmp
    if root != REAL:
        write_cohort(root, LEGACY, 1, (240, 240, 155), seed=0)
    case = discover(root, LEGACY, "brats2019")[0].iloc[0]
    _, volume = read_volume(Path(case.t1ce))
    _, seg = load_labels(Path(case.seg), LEGACY)
    truth = region_mask(seg, LEGACY, "wt")
    key, _ = largest_area_slice(truth)
    start = max(0, min(key - slices // 2, volume.shape[2] - slices))
    truth = truth[:, :, start : start + slices]
    return volume[:, :, start : start + slices], key - start, tight_box(axial_slice(truth, key - start)), truth


def random_predictor(tmp: Path, image_size: int, device):
    """A sam2.1_hiera_t video predictor with random weights, loaded from MedSAM-2's checkpoint format."""
    checkpoint = tmp / "random.pt"
    torch.manual_seed(0)
    weights = medsam2.build_model(image_size, torch.device("cpu")).state_dict()
    torch.save({"model": weights, "image_size": image_size}, checkpoint)
    return medsam2.load_predictor(checkpoint, image_size, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=155, help="axial slices around the key slice")
    parser.add_argument("--encoder-batch", type=int, default=16, help="slices per image-encoder pass")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        volume, key, box, _ = benchmark_volume(Path(tmp), args.slices)
        predictor = random_predictor(Path(tmp), args.image_size, device)
        frames = medsam2.preprocess(volume, args.image_size)

        begin = time.perf_counter()
        medsam2.propagate(predictor, frames, volume.shape[1], volume.shape[0], key, box, device,
                          encoder_batch=args.encoder_batch)
        full = time.perf_counter() - begin
        begin = time.perf_counter()
        with torch.inference_mode():
            medsam2.cache_frame_features(predictor, {"images": frames, "device": device}, args.encoder_batch)
        encoder = time.perf_counter() - begin
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    n = frames.shape[0]
    print(f"MedSAM-2 (sam2.1_hiera_t) at {args.image_size} px, {n} slices of 240x240, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  whole volume (init, both directions) : {full:8.1f} s  ({full / n:.3f} s per slice)")
    print(f"  image encoder alone, {args.encoder_batch:3d} per pass   : {encoder:8.1f} s  ({encoder / n:.3f} s per slice)")
    print(f"  ratio (whole / encoder)              : {full / encoder:8.2f}x")
    print(f"  peak resident memory                 : {peak_gb:8.2f} GB")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
