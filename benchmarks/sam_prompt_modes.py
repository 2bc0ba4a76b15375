"""All prompt modes from one cached image embedding against one full SAM forward per mode.

    .venv/bin/python benchmarks/sam_prompt_modes.py [--slices N] [--device auto]

Runs the sam-vit-base architecture (SamModel(SamConfig()), random weights, nothing downloaded)
on N random 240x240 slices with the study's modes (GT box, jitter 5/10/15/20/30 px, no prompt)
and prints, measured in this run, both times per slice and their ratio.
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

MODES = sam.prompt_modes([0, 5, 10, 15, 20, 30])


def random_slice(index: int) -> SliceSample:
    rng = np.random.default_rng(index)
    mask = np.zeros((240, 240), np.uint8)
    mask[80:150, 90:170] = 1
    image = np.clip(rng.random((240, 240)) * 0.5 + 0.5 * mask, 0, 1).astype(np.float32)
    return SliceSample(f"bench{index}", 0, image, mask, (90, 80, 169, 149))


@torch.no_grad()
def full_forward_per_mode(model, processor, sample, device) -> None:
    for mode in MODES:
        box = sam.mode_box(mode, sample, seed=0)
        inputs = sam.prepare(processor, [sample.image], None if box is None else [box])
        sam.mask_logits(model, processor, inputs, device, with_boxes=box is not None)


def benchmark_model(tiny: bool, device) -> tuple:
    """(model, processor, name): sam-vit-base's architecture with random weights, or with ``tiny``
    the demo's tiny-sam-256 stand-in architecture, seeded."""
    torch.manual_seed(0)
    if tiny:
        spec = SAM_STANDINS["tiny-sam-256"]
        model, image_size, name = sam.standin_model(spec), spec["image_size"], "tiny-sam-256"
    else:
        model, image_size, name = SamModel(SamConfig()), 1024, "sam-vit-base"
    return model.to(device).eval(), sam.sam_processor(image_size), name


def seconds_per_slice(func, samples, device) -> float:
    """Mean wall time of ``func(sample)`` over the samples (CUDA work waited for)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for sample in samples:
        func(sample)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny-sam-256 architecture (a quick run)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model, processor, name = benchmark_model(args.tiny, device)
    samples = [random_slice(i) for i in range(args.slices)]
    sam.predict_modes(model, processor, samples[0], MODES, 0, device)  # warm-up
    cached = seconds_per_slice(lambda s: sam.predict_modes(model, processor, s, MODES, 0, device), samples, device)
    full = seconds_per_slice(lambda s: full_forward_per_mode(model, processor, s, device), samples, device)
    print(f"{name}, {len(MODES)} prompt modes, {args.slices} slices of 240x240, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  all modes, cached embedding : {cached:8.3f} s per slice")
    print(f"  one full forward per mode   : {full:8.3f} s per slice")
    print(f"  ratio (full / cached)       : {full / cached:8.2f}x")


if __name__ == "__main__":
    main()
