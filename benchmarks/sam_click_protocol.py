"""The click protocol (GT box, then 5 correction clicks) against one box prediction, LoRA-SAM in 2D.

    .venv/bin/python benchmarks/sam_click_protocol.py [--slices N] [--clicks 5] [--device auto] [--tiny]

Runs the sam-vit-base architecture (SamModel(SamConfig()), random weights, nothing downloaded; a
random-weight model leaves an error to click on at every step) on N random 240x240 slices and
prints, measured in this run, the time per slice of one GT-box prediction (its image embedding and
one decode) and of the whole protocol (`sam.click_refinement`: the same one embedding, then one
decode per click with the box, the clicks and the previous mask), and their ratio. Issue 26's goal
for LoRA-SAM in 2D: at most 1.2x. MedSAM-2's 3D protocol is not built yet.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sam_prompt_modes import benchmark_model, random_slice, seconds_per_slice  # this folder's benchmark
from sambrats import sam
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


if __name__ == "__main__":
    main()
