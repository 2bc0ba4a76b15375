"""The paper-scale models on the first CUDA device: time and peak GPU memory per step, the
paper-scale hours of each GPU rule, and whether the same LoRA steps give the same weights twice.

    .venv/bin/python benchmarks/gpu_paper_scale.py            # or: make gpu-check
    .venv/bin/python benchmarks/gpu_paper_scale.py --tiny --device cpu   # what the test suite runs

Paper-size architectures with random weights, nothing downloaded: sam-vit-base + LoRA r=8 (the
paper config's target modules) training steps at batch 8 with bf16 autocast and the prompt-mode
inference; YOLOv8m from its yaml at 640 px, batch 16; nnU-Net 2d and 3d_fullres with the plans
nnU-Net's own planner makes for BraTS (240 x 240 x 155 at 1 mm; 2d: t2f slices, 3d: four
contrasts); MedSAM-2 (sam2.1_hiera_t) at 512 px propagating through a 155-slice volume (the real
BraTS 2019 case in ../shared/data/real when present). The hours multiply each step's time by the
steps config/config.yaml asks for (per job: one region, one replicate); validation and data
loading are not in them, so read them as a lower bound. `--tiny` runs every part at toy sizes, on
the CPU too, only to prove that it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from medsam2_volume import benchmark_volume, random_predictor  # noqa: E402  (the MedSAM-2 benchmark's volume)

from sambrats import medsam2, sam  # noqa: E402
from sambrats.devices import autocast, resolve_device  # noqa: E402
from sambrats.presets import SAM_STANDINS  # noqa: E402
from sambrats.seeding import seed_everything  # noqa: E402
from sambrats.slices import SliceSample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
GLI_CASES = 1350  # BraTS 2024 GLI training cases (the larger dataset of every rule here)


@contextmanager
def measured(device, label: str, steps: int, paper_steps: float | None = None, rule: str = ""):
    """Times the block (``steps`` steps), prints seconds per step, peak GPU memory and, when
    ``paper_steps`` is given, the hours of ``rule`` at paper scale."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    begin = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_step = (time.perf_counter() - begin) / steps
    peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else float("nan")
    hours = f", {rule} at paper scale: {per_step * paper_steps / 3600:7.2f} h per job" if paper_steps else ""
    print(f"  {label:<44} {per_step:8.3f} s per step, peak GPU memory {peak:6.2f} GB{hours}", flush=True)


def random_slices(count: int, size: int, seed: int = 0) -> list[SliceSample]:
    """Slices with a bright square tumour and its box."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        mask = np.zeros((size, size), np.uint8)
        mask[size // 3 : size // 2 + size // 5, size // 3 : size // 2 + size // 6] = 1
        image = np.clip(rng.random((size, size)) * 0.5 + 0.5 * mask, 0, 1).astype(np.float32)
        rows, cols = np.nonzero(mask)
        samples.append(SliceSample(f"bench{index}", 0, image, mask, (cols.min(), rows.min(), cols.max(), rows.max())))
    return samples


def lora_sam(tiny: bool, device) -> tuple:
    """A LoRA-SAM of the paper config's LoRA on sam-vit-base (tiny: the demo's stand-in) and its processor."""
    from transformers import SamConfig, SamModel

    if tiny:
        spec = SAM_STANDINS["tiny-sam-256"]
        model, image_size = sam.standin_model(spec), spec["image_size"]
    else:
        model, image_size = SamModel(SamConfig()), 1024
    lora = PAPER["sam"]["lora"]
    model = sam.add_lora(model, lora["r"], lora["alpha"], lora["dropout"], lora["target_modules"]).to(device)
    return model, sam.sam_processor(image_size)


def lora_steps(tiny: bool, device, steps: int, timed: bool) -> dict[str, torch.Tensor]:
    """``steps`` LoRA-SAM training steps from seed 0 (``timed``: reported, then the inference); the
    trained LoRA weights."""
    train = PAPER["sam"]["train"]
    settings = sam.TrainSettings(epochs=1, batch_size=2 if tiny else train["batch_size"], lr=train["lr"],
                                 weight_decay=train["weight_decay"], dice_weight=1.0, bce_weight=1.0,
                                 box_jitter=train["box_jitter"], no_prompt_fraction=0.0, seed=0)
    seed_everything(0)
    model, processor = lora_sam(tiny, device)
    samples = random_slices(settings.batch_size * steps, 64 if tiny else 240)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    if not timed:
        sam.train_epoch(model, processor, samples, optimizer, settings, np.random.default_rng(1), device, "LoRA-SAM")
        return sam.trainable_state(model)
    train_slices = GLI_CASES * PAPER["split"]["train"]
    with measured(device, f"LoRA-SAM training, batch {settings.batch_size}", steps,
                  train["epochs"] * math.ceil(train_slices / settings.batch_size), "train_lora_sam"):
        sam.train_epoch(model, processor, samples, optimizer, settings, np.random.default_rng(1), device, "LoRA-SAM")
    print(f"    trainable parameters: {sam.parameter_counts(model)[0]:,}")
    weights = sam.trainable_state(model)
    inference(model, processor, samples[:2], device)
    return weights


def inference(model, processor, samples: list[SliceSample], device) -> None:
    """Every prompt mode of the paper config from one embedding per slice (``predict_sam``)."""
    modes = sam.prompt_modes(PAPER["sam"]["eval"]["jitter_px"])
    model.eval()
    sam.predict_modes(model, processor, samples[0], modes, 0, device)
    with measured(device, f"LoRA-SAM inference, {len(modes)} modes per slice", len(samples),
                  GLI_CASES * PAPER["split"]["test"], "predict_sam"):
        for sample in samples:
            sam.predict_modes(model, processor, sample, modes, 0, device)


def determinism(first: dict[str, torch.Tensor], tiny: bool, device, steps: int) -> None:
    """The same LoRA steps again from the same seed: identical weights, or the largest difference."""
    second = lora_steps(tiny, device, steps, timed=False)
    largest = max((first[name].float() - second[name].float()).abs().max().item() for name in first)
    verdict = "identical" if largest == 0 else f"largest difference {largest:.3e}"
    print(f"  determinism, the same {steps} LoRA steps twice: {verdict}")


def yolo(tiny: bool, device, steps: int) -> None:
    """YOLOv8m from its yaml (tiny: YOLOv8n at 64 px): training iterations on random boxes."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    settings = PAPER["yolo"]
    size, batch = (64, 2) if tiny else (settings["imgsz"], settings["batch"])
    model = DetectionModel("yolov8n.yaml" if tiny else "yolov8m.yaml", nc=1, verbose=False).to(device)
    model.args = get_cfg()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator).to(device)
    targets = {"img": images, "cls": torch.zeros(batch, 1, device=device),
               "batch_idx": torch.arange(batch, dtype=torch.float32, device=device),
               "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.25]] * batch, device=device)}

    def step():
        with autocast(device):
            loss, _ = model.loss(targets)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()

    step()
    iterations = settings["epochs"] * math.ceil(GLI_CASES * PAPER["split"]["train"] / settings["batch"])
    with measured(device, f"YOLOv8{'n' if tiny else 'm'} training at {size} px, batch {batch}", steps,
                  iterations, "train_yolo"):
        for _ in range(steps):
            step()


def nnunet_plans(shape, channels: int, cases: int) -> dict:
    """nnU-Net's own 3d_fullres and 2d plans for volumes of ``shape`` at 1 mm (its default planner)."""
    with tempfile.TemporaryDirectory(prefix="nnunet-plans-") as tmp:  # the plans only, nothing kept
        root = Path(tmp)
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            os.environ[name] = str(root / name)
        dataset = "Dataset999_BenchmarkBraTS"
        raw = root / "nnUNet_raw" / dataset
        (raw / "imagesTr").mkdir(parents=True)
        (raw / "dataset.json").write_text(json.dumps({
            "channel_names": {str(i): f"channel{i}" for i in range(channels)}, "labels": {"background": 0, "tumour": 1},
            "numTraining": cases, "file_ending": ".nii.gz"}))
        preprocessed = root / "nnUNet_preprocessed" / dataset
        preprocessed.mkdir(parents=True)
        (preprocessed / "dataset_fingerprint.json").write_text(json.dumps({
            "spacings": [[1.0, 1.0, 1.0]] * cases, "shapes_after_crop": [list(shape)] * cases,
            "median_relative_size_after_cropping": 1.0}))
        from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

        planner = ExperimentPlanner(dataset)
        return {"3d_fullres": planner.get_plans_for_configuration((1.0, 1.0, 1.0), shape, "3d",
                                                                  float(np.prod(shape)) * cases, {}),
                "2d": planner.get_plans_for_configuration((1.0, 1.0), shape[1:], "2d",  # one slice per case
                                                          float(np.prod(shape[1:])) * cases, {})}


def nnunet(tiny: bool, device, steps: int) -> None:
    """nnU-Net 2d and 3d_fullres training iterations at nnU-Net's own plans for BraTS volumes."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    shape = (16, 32, 32) if tiny else (155, 240, 240)
    train_cases = round(GLI_CASES * PAPER["split"]["train"])
    volumes = PAPER["nnunet"]["volumes"]
    channels = {"2d": 1, "3d_fullres": 1 if tiny else len(volumes["channels"])}
    for configuration, plan in nnunet_plans(shape, channels["3d_fullres"], train_cases).items():
        architecture = plan["architecture"]
        network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                         architecture["_kw_requires_import"], channels[configuration], 2,
                                         deep_supervision=False).to(device)
        optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99, nesterov=True)
        batch, patch = 2 if tiny else plan["batch_size"], plan["patch_size"]  # tiny: nnU-Net's smallest batch
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(batch, channels[configuration], *patch, generator=generator).to(device)
        labels = torch.randint(0, 2, (batch, *patch), generator=generator).to(device)

        def step():
            with autocast(device):
                loss = torch.nn.functional.cross_entropy(network(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()
        settings = volumes if configuration == "3d_fullres" else PAPER["nnunet"]
        rule = "train_nnunet_volumes" if configuration == "3d_fullres" else "train_nnunet"
        with measured(device, f"nnU-Net {configuration}, patch {'x'.join(map(str, patch))}, batch {batch}", steps,
                      settings["epochs"] * settings["iterations_per_epoch"], rule):
            for _ in range(steps):
                step()


def medsam2_volume(tiny: bool, device) -> None:
    """MedSAM-2 propagating through one volume from its key slice, both directions."""
    image_size, slices = (64, 3) if tiny else (PAPER["medsam2"]["image_size"], 155)
    with tempfile.TemporaryDirectory() as tmp:
        volume, key, box, _ = benchmark_volume(Path(tmp), slices)
        predictor = random_predictor(Path(tmp), image_size, device)
        frames = medsam2.preprocess(volume, image_size)
        with measured(device, f"MedSAM-2 at {image_size} px, {slices} slices (one volume)", 1,  # a BraTS 2024 batch
                      math.ceil(GLI_CASES / PAPER["medsam2"]["n_batches"]), "medsam2_predict"):
            medsam2.propagate(predictor, frames, volume.shape[1], volume.shape[0], key, box, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (the test suite's CPU run)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type != "cuda" and not args.tiny:
        parser.error("no CUDA device: paper sizes on the CPU take hours; --tiny runs the toy sizes")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{'toy sizes' if args.tiny else 'paper scale'} on {device} ({name}), torch {torch.__version__}, "
          f"{args.steps} timed steps per model")
    determinism(lora_steps(args.tiny, device, args.steps, timed=True), args.tiny, device, args.steps)
    yolo(args.tiny, device, args.steps)
    nnunet(args.tiny, device, args.steps)
    medsam2_volume(args.tiny, device)
    print("GPU check done")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
