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
import time

import numpy as np
import torch
from transformers import SamConfig, SamModel

from sambrats import sam
from sambrats.devices import resolve_device
from sambrats.presets import SAM_STANDINS
from sambrats.slices import SliceSample


def random_slice(index: int) -> SliceSample:
    rng = np.random.default_rng(index)
    mask = np.zeros((240, 240), np.uint8)
    mask[80:150, 90:170] = 1
    image = np.clip(rng.random((240, 240)) * 0.5 + 0.5 * mask, 0, 1).astype(np.float32)
    return SliceSample(f"bench{index}", 0, image, mask, (90, 80, 169, 149))


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
    torch.manual_seed(0)
    if args.tiny:
        spec = SAM_STANDINS["tiny-sam-256"]
        model, image_size, name = sam.standin_model(spec), spec["image_size"], "tiny-sam-256"
    else:
        model, image_size, name = SamModel(SamConfig()), 1024, "sam-vit-base"
    model = model.to(device).eval()
    processor = sam.sam_processor(image_size)
    samples = [random_slice(i) for i in range(args.slices)]
    box_prediction(model, processor, samples[0], device)  # warm-up
    made = []

    def timed(func) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for sample in samples:
            func(sample)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / len(samples)

    def protocol(sample):
        made.append(len(sam.click_refinement(model, processor, sample.image, sample.mask, sample.box, args.clicks,
                                             device)[1]))

    box = timed(lambda s: box_prediction(model, processor, s, device))
    clicks = timed(protocol)
    print(f"{name}, {args.slices} slices of 240x240, {device}, {torch.get_num_threads()} threads; "
          f"clicks made per slice: {made}")
    print(f"  {'one GT-box prediction':<28}: {box:8.3f} s per slice")
    print(f"  {f'box + {args.clicks} clicks (protocol)':<28}: {clicks:8.3f} s per slice")
    print(f"  {'ratio (protocol / box)':<28}: {clicks / box:8.2f}x (goal for LoRA-SAM in 2D: at most 1.2x)")


if __name__ == "__main__":
    main()
