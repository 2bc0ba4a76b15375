"""The click protocol (GT box, then 5 correction clicks) against one box prediction, per method:
LoRA-SAM in 2D and MedSAM-2 in 3D.

    .venv/bin/python benchmarks/sam_click_protocol.py [--slices N] [--clicks 5] [--device auto] [--tiny]
                                                      [--image-size 512] [--volume-slices 155]

Runs the sam-vit-base architecture (SamModel(SamConfig()), random weights, nothing downloaded; a
random-weight model leaves an error to click on at every step) on N random 240x240 slices and
prints, measured in this run, the time per slice of one GT-box prediction (its image embedding and
one decode) and of the whole protocol (`sam.click_refinement`: the same one embedding, then one
decode per click with the box, the clicks and the previous mask), and their ratio. Then MedSAM-2
(sam2.1_hiera_t, random weights, at ``--image-size``) on one volume of ``--volume-slices`` slices
(benchmarks/medsam2_volume.py's): one box on the key slice propagated both ways, against the protocol
from one encoding of the frames (`medsam2.prompt_predictions`: the box, then each 3D click added on
its frame and re-propagated from there). Issue 26's goals: at most 1.2x for LoRA-SAM in 2D, 2x for
MedSAM-2 in 3D.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medsam2_volume import benchmark_volume, random_predictor  # this folder's benchmarks
from sam_prompt_modes import benchmark_model, random_slice, seconds_per_slice
from sambrats import medsam2, sam
from sambrats.devices import resolve_device
from sambrats.slices import SliceSample


@torch.no_grad()
def box_prediction(model, processor, sample: SliceSample, device) -> np.ndarray:
    """One GT-box prediction: the slice's image embedding and one decode."""
    inputs = sam.prepare(processor, [sample.image], [sample.box])
    embedding = sam.image_embeddings(model, inputs, device)
    return (sam.decode(model, processor, inputs, device, embedding)[0][0, 0] > 0).cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny-sam-256 architecture (a quick run)")
    parser.add_argument("--image-size", type=int, default=512, help="MedSAM-2's input size (MedSAM-2: 512)")
    parser.add_argument("--volume-slices", type=int, default=155, help="axial slices of MedSAM-2's volume")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model, processor, name = benchmark_model(args.tiny, device)
    samples = [random_slice(i) for i in range(args.slices)]
    box_prediction(model, processor, samples[0], device)  # warm-up
    made = []

    def protocol(sample):
        made.append(len(sam.click_refinement(model, processor, sample.image, sample.mask, sample.box, args.clicks,
                                             device)[1]))

    box = seconds_per_slice(lambda s: box_prediction(model, processor, s, device), samples, device)
    clicks = seconds_per_slice(protocol, samples, device)
    print(f"{name}, {args.slices} slices of 240x240, {device}, {torch.get_num_threads()} threads; "
          f"clicks made per slice: {made}")
    print(f"  {'one GT-box prediction':<28}: {box:8.3f} s per slice")
    print(f"  {f'box + {args.clicks} clicks (protocol)':<28}: {clicks:8.3f} s per slice")
    print(f"  {'ratio (protocol / box)':<28}: {clicks / box:8.2f}x (goal for LoRA-SAM in 2D: at most 1.2x)")
    volume_protocol(args, device)


def volume_protocol(args, device) -> None:
    """MedSAM-2: one box propagated both ways against the box + clicks protocol, on one volume."""
    settings = medsam2.MedsamSettings(
        image_size=args.image_size, checkpoint_image_size=args.image_size, box_jitter=0, largest_component=True,
        offload_video_to_cpu=False, offload_state_to_cpu=False, encoder_batch=16, overlays=0, seed=0,
        clip_percentiles=(0.5, 99.5), nsd_tolerance_mm=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        volume, key, box, truth = benchmark_volume(Path(tmp), args.volume_slices)
        predictor = random_predictor(Path(tmp), args.image_size, device)
        medsam2.segment_from_box(predictor, [volume], key, box, settings, device)  # warm-up
        timings = {}
        for name, run in (("box", lambda: medsam2.segment_from_box(predictor, [volume], key, box, settings, device)),
                          ("protocol", lambda: medsam2.prompt_predictions(
                              medsam2.open_session(predictor, [volume], settings, device), truth, [], args.clicks,
                              settings, "benchmark"))):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            begin = time.perf_counter()
            result = run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings[name] = time.perf_counter() - begin
    made = len(result[0][medsam2.CLICK_MODE][2])
    print(f"MedSAM-2 (sam2.1_hiera_t, random weights) at {args.image_size} px, {volume.shape[2]} slices of "
          f"{volume.shape[0]}x{volume.shape[1]}, {device}; clicks made: {made}")
    print(f"  {'one box, both directions':<28}: {timings['box']:8.3f} s per volume")
    print(f"  {f'box + {args.clicks} clicks (protocol)':<28}: {timings['protocol']:8.3f} s per volume")
    print(f"  {'ratio (protocol / box), 3D':<28}: {timings['protocol'] / timings['box']:8.2f}x "
          "(goal for MedSAM-2 in 3D: at most 2x)")


if __name__ == "__main__":
    main()
