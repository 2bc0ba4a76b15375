"""SAM: loading, the demo stand-in, LoRA, the training loop and prompt-mode inference.

The base model is a transformers ``SamModel`` read with ``from_pretrained`` from a hub id or a
local ``save_pretrained`` folder, preprocessed by its ``SamProcessor`` (resize, pad, normalise,
box rescaling) and post-processed by the processor's ``post_process_masks``. The demo base model
is a stand-in: a tiny randomly initialised SAM trained in full for a few minutes on a separate
synthetic cohort, saved in the same format and read back by the same code.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from scipy import ndimage
from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

from .brats import GLI, region_mask, resolve_modality
from .clicks import (CLICK_MODE, STEP_COLUMNS, Click, clicks_text, correction_click, mode_points, most_interior,
                     protocol_scores, random_points, simulate)
from .devices import autocast, resolve_device
from .metrics import dice, metrics_row, metrics_table
from .outputs import read_tsv, staged_directory, write_tsv
from .plotting import pyplot, save_figure, training_panel
from .presets import SAM_STANDINS
from .seeding import seed_everything
from .slices import (SliceSample, axial_slice, intensity_range, jitter_box, largest_area_slice, load_split,
                     normalise, seeded_jitter, tight_box, to_rgb)
from .synth import LESION_TISSUES, labels_from_tissues, synth_case
from .yolo import yolo_prompt
from .progress import progress

log = logging.getLogger(__name__)



def tiny_sam_config(image_size: int, vision_width: int, vision_layers: int, width: int) -> SamConfig:
    """A small SAM of the real architecture: every module name of sam-vit-base exists in it."""
    patch = 16
    return SamConfig(
        vision_config=dict(
            hidden_size=vision_width,
            output_channels=width,
            num_hidden_layers=vision_layers,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=patch,
            window_size=image_size // patch // 2,
            global_attn_indexes=[vision_layers - 1],
            mlp_dim=4 * vision_width,
            num_pos_feats=width // 2,
        ),
        prompt_encoder_config=dict(hidden_size=width, image_size=image_size, patch_size=patch),
        mask_decoder_config=dict(
            hidden_size=width, mlp_dim=4 * width, num_attention_heads=4, iou_head_hidden_dim=width
        ),
    )


def sam_processor(image_size: int) -> SamProcessor:
    """SamProcessor for a model with ``image_size`` input (sam-vit-base: 1024)."""
    low_res = image_size // 4
    return SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": image_size},
            pad_size={"height": image_size, "width": image_size},
            mask_size={"longest_edge": low_res},
            mask_pad_size={"height": low_res, "width": low_res},
        )
    )


def load_base(name_or_path: str | Path, device: torch.device) -> tuple[SamModel, SamProcessor]:
    """SAM and its processor from a hub id or a ``save_pretrained`` folder."""
    try:
        model = SamModel.from_pretrained(str(name_or_path))
        processor = SamProcessor.from_pretrained(str(name_or_path))
    except OSError as err:
        raise OSError(
            f"cannot load SAM from {name_or_path!r}: {err}. Without internet, point "
            "sam.base_model at a local save_pretrained folder (e.g. resources/sam-vit-base)."
        ) from err
    return model.to(device), processor


def add_lora(model: SamModel, r: int, alpha: int, dropout: float, target_modules: list[str]) -> PeftModel:
    """Wrap SAM with LoRA adapters on every linear layer with one of ``target_modules``' names."""
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    return get_peft_model(model, config)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def prepare(processor: SamProcessor, images: list[np.ndarray], boxes=None, points=None) -> dict:
    """Processor outputs for slices and optional boxes (x0, y0, x1, y1 in slice pixels): one box
    per image, or a list of boxes per image (each decoded on its own); ``points``: per image the
    clicks of one decode (``sambrats.clicks.Click`` on the slice: SAM gets their (x, y) and label 1
    for the region, 0 for not), with the image's one box if it has one."""
    input_boxes = input_points = input_labels = None
    if boxes is not None:
        input_boxes = [
            [list(map(float, b)) for b in (box if isinstance(box[0], (list, tuple)) else [box])]
            for box in boxes
        ]
    if points is not None:
        input_points = [[[list(map(float, click.xy)) for click in clicks]] for clicks in points]
        input_labels = [[[int(click.positive) for click in clicks]] for clicks in points]
    return processor(images=[to_rgb(image) for image in images], input_boxes=input_boxes,
                     input_points=input_points, input_labels=input_labels, return_tensors="pt")


def mask_logits(model, processor, inputs, device, image_embeddings=None, with_boxes=True) -> torch.Tensor:
    """Mask logits [B, boxes, H, W] at slice resolution (one box per decode; without boxes, one
    prompt-free decode), from the pixels or from cached image embeddings."""
    return decode(model, processor, inputs, device, image_embeddings, with_boxes)[0]


def decode(model, processor, inputs, device, image_embeddings=None, with_boxes=True, previous=None):
    """(mask logits [B, prompts, H, W] at slice resolution, the decoder's low-resolution logits
    [B, prompts, h, w]): the inputs' boxes (unless ``with_boxes`` is False) and points, and
    ``previous``, a former decode's low-resolution logits fed back as SAM's mask prompt."""
    kwargs = {}
    if with_boxes and "input_boxes" in inputs:
        kwargs["input_boxes"] = inputs["input_boxes"].float().to(device)
    if "input_points" in inputs:
        kwargs["input_points"] = inputs["input_points"].float().to(device)
        kwargs["input_labels"] = inputs["input_labels"].to(device)
    if previous is not None:
        kwargs["input_masks"] = previous
    if image_embeddings is None:
        kwargs["pixel_values"] = inputs["pixel_values"].to(device)
    else:
        kwargs["image_embeddings"] = image_embeddings
    with autocast(device):
        outputs = model(multimask_output=False, **kwargs)
    low_resolution = outputs.pred_masks.float()
    masks = processor.image_processor.post_process_masks(
        low_resolution, inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
    )
    return torch.stack([mask[:, 0] for mask in masks]), low_resolution[:, :, 0]


def image_embeddings(model, inputs, device) -> torch.Tensor:
    """The vision encoder's output for the processed images (computed once per slice; differentiable,
    unlike ``SamModel.get_image_embeddings``, so training decodes several prompts from one pass)."""
    with autocast(device):
        return model.vision_encoder(inputs["pixel_values"].to(device))[0]


def segmentation_loss(logits, target, dice_weight: float, bce_weight: float) -> torch.Tensor:
    """Soft Dice + binary cross-entropy on mask logits."""
    probs = torch.sigmoid(logits)
    intersection = (probs * target).sum(dim=(1, 2))
    soft_dice = (2 * intersection + 1) / (probs.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return dice_weight * (1 - soft_dice.mean()) + bce_weight * bce


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    dice_weight: float
    bce_weight: float
    box_jitter: int
    no_prompt_fraction: float
    seed: int
    point_prompt_fraction: float = 0.0  # batches prompted by 1 to 3 random points of each mask, not its box
    click_steps: int = 0  # correction-click decodes after a prompted batch's first (SAM's interactive training)


@torch.no_grad()
def validation_dice(model, processor, samples: list[SliceSample], device, batch_size: int) -> float:
    """Mean Dice with the ground-truth box over the samples."""
    model.eval()
    scores = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        inputs = prepare(processor, [s.image for s in batch], [s.box for s in batch])
        predictions = (mask_logits(model, processor, inputs, device)[:, 0] > 0).cpu().numpy()
        scores += [dice(pred, s.mask) for pred, s in zip(predictions, batch)]
    return float(np.mean(scores))


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_training_state(workdir: Path, model, optimizer, scheduler, rng, progress: dict) -> None:
    """Everything needed to resume after the last finished epoch, replaced atomically."""
    with staged_directory(workdir / "last") as folder:
        save_file(trainable_state(model), folder / "trainable.safetensors")
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state()},
            folder / "optim.pt",
        )
        (folder / "progress.json").write_text(json.dumps({**progress, "numpy_rng": rng.bit_generator.state}))


def load_training_state(workdir: Path, fingerprint: str, model, optimizer, scheduler, rng) -> dict | None:
    """Restore the last epoch's state if it belongs to the same training run, else None."""
    folder = workdir / "last"
    if not (folder / "progress.json").is_file():
        return None
    progress = json.loads((folder / "progress.json").read_text())
    if progress.get("fingerprint") != fingerprint:
        log.info("ignoring resume state in %s: it belongs to another training setup", workdir)
        return None
    state = load_file(folder / "trainable.safetensors")
    missing = set(trainable_state(model)) - set(state)
    if missing:
        raise RuntimeError(f"resume state in {folder} lacks {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    saved = torch.load(folder / "optim.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    rng.bit_generator.state = progress.pop("numpy_rng")
    return progress


def batch_prompt(draw: float, settings: TrainSettings) -> str:
    """A training batch's prompt from a uniform draw: no prompt, random points or the (jittered) box."""
    if draw < settings.no_prompt_fraction:
        return "none"
    if draw < settings.no_prompt_fraction + settings.point_prompt_fraction:
        return "points"
    return "box"


def next_clicks(made: list[list[Click]], logits: torch.Tensor, batch: list[SliceSample]) -> list[list[Click]]:
    """Every sample's clicks plus a correction click on its latest prediction (a sample predicted
    without error gets its most interior point, so that every sample of the batch has as many)."""
    predictions = (logits.detach() > 0).cpu().numpy()
    return [clicks + [correction_click(prediction, s.mask) or Click(most_interior(s.mask), True)]
            for clicks, prediction, s in zip(made, predictions, batch)]


def prompted_loss(model, processor, batch: list[SliceSample], prompt: str, boxes, points, settings: TrainSettings,
                  device) -> torch.Tensor:
    """The batch's loss: the first decode (``prompt``: none, ``points`` or ``boxes``) from one image
    embedding per slice, then, for a prompted batch, ``click_steps`` decodes that each add a
    correction click on the previous prediction and feed its low-resolution logits back as the mask
    prompt, as SAM trains interactive refinement (the image embedding detached there: the encoder
    learns from the first decode); the mean of the first decode's loss and the refinements' mean."""
    images = [s.image for s in batch]
    target = torch.from_numpy(np.stack([s.mask for s in batch])).float().to(device)
    inputs = prepare(processor, images, boxes, points)
    embedding = image_embeddings(model, inputs, device)
    logits, previous = decode(model, processor, inputs, device, embedding, with_boxes=prompt == "box")
    loss = segmentation_loss(logits[:, 0], target, settings.dice_weight, settings.bce_weight)
    if prompt == "none" or not settings.click_steps:
        return loss
    made, refined = points or [[] for _ in batch], []
    for _ in range(settings.click_steps):
        made = next_clicks(made, logits[:, 0], batch)
        inputs = prepare(processor, images, boxes if prompt == "box" else None, made)
        logits, previous = decode(model, processor, inputs, device, embedding.detach(), previous=previous.detach())
        refined.append(segmentation_loss(logits[:, 0], target, settings.dice_weight, settings.bce_weight))
    return (loss + torch.stack(refined).mean()) / 2


def train_epoch(model, processor, samples: list[SliceSample], optimizer, settings: TrainSettings,
                rng: np.random.Generator, device, description: str) -> list[float]:
    """One pass over the samples in a random order; each batch prompted by jittered boxes, by 1 to 3
    random points of each mask (probability ``point_prompt_fraction``) or by nothing (probability
    ``no_prompt_fraction``), a prompted one then refined by correction clicks (``prompted_loss``);
    the loss of every batch."""
    model.train()
    order = rng.permutation(len(samples))
    losses = []
    for begin in progress(range(0, len(order), settings.batch_size), description, "batch"):
        batch = [samples[i] for i in order[begin : begin + settings.batch_size]]
        prompt = batch_prompt(rng.random(), settings)
        boxes = [jitter_box(s.box, settings.box_jitter, s.mask.shape, rng) for s in batch]
        points = None
        if prompt == "points":  # as many points for every mask: SAM's processor takes one count per batch
            count = min(int(rng.integers(1, 4)), *(int(s.mask.sum()) for s in batch))
            points = [[Click(index, True) for index in random_points(s.mask, count, rng)] for s in batch]
        loss = prompted_loss(model, processor, batch, prompt, boxes, points, settings, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train(
    model,
    processor: SamProcessor,
    train_samples: list[SliceSample],
    val_samples: list[SliceSample],
    settings: TrainSettings,
    workdir: Path,
    device: torch.device,
) -> pd.DataFrame:
    """Train the model's trainable parameters; the best epoch by validation Dice is saved with
    ``save_pretrained`` in ``workdir/best``. Resumes from ``workdir/last`` when it exists for the
    same settings and data. Returns the history (epoch, train_loss, val_dice, lr, seconds)."""
    workdir = Path(workdir)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.epochs, 1))
    fingerprint = json.dumps(
        {"settings": asdict(settings), "train": [s.case_id for s in train_samples],
         "val": [s.case_id for s in val_samples], "trainable": parameter_counts(model)},
        sort_keys=True,
    )
    progress = load_training_state(workdir, fingerprint, model, optimizer, scheduler, rng)
    if progress is None:
        progress = {"fingerprint": fingerprint, "epoch": 0, "best_dice": -1.0, "history": []}
    else:
        log.info("resuming after epoch %d of %d", progress["epoch"], settings.epochs)
    for epoch in range(progress["epoch"] + 1, settings.epochs + 1):
        start = time.perf_counter()
        losses = train_epoch(model, processor, train_samples, optimizer, settings, rng, device,
                             f"epoch {epoch}/{settings.epochs}")
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        val = validation_dice(model, processor, val_samples, device, settings.batch_size)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_dice": val, "lr": lr,
               "seconds": time.perf_counter() - start}
        log.info("epoch %d: train loss %.4f, val Dice %.4f", epoch, row["train_loss"], val)
        progress["history"].append(row)
        if val > progress["best_dice"]:
            progress["best_dice"] = val
            with staged_directory(workdir / "best") as folder:
                model.save_pretrained(folder)
        progress["epoch"] = epoch
        save_training_state(workdir, model, optimizer, scheduler, rng, progress)
    return pd.DataFrame(progress["history"], columns=["epoch", "train_loss", "val_dice", "lr", "seconds"])


def plot_history(history: pd.DataFrame, path: Path, title: str) -> None:
    """Training loss and validation Dice per epoch."""
    fig, axis = pyplot().subplots(figsize=(6, 4.2))
    training_panel(axis, history.epoch, history.train_loss, "train loss (soft Dice + BCE)", history.val_dice,
                   "val Dice (GT box)", title)
    save_figure(fig, path, svg=False, dpi=120)


def finish_training(history: pd.DataFrame, workdir: Path, out_dir, history_path, curve_path, title, extra=None):
    """Publish the best checkpoint (plus ``extra`` files), history and curve; drop the work folder."""
    with staged_directory(out_dir) as folder:
        for item in Path(workdir, "best").iterdir():
            shutil.copy2(item, folder / item.name)
        if extra is not None:
            extra(folder)
    write_tsv(history, history_path)
    plot_history(history, Path(curve_path), title)
    shutil.rmtree(workdir)


def standin_samples(n_cases: int, shape, seed: int, modality: str, lesions: int = 0,
                    min_area: int = 12) -> list[list[SliceSample]]:
    """Per case of a separate synthetic GLI cohort (never the demo's), its whole-tumour key slice
    once per object on it: the tumour and every look-alike lesion of at least ``min_area`` pixels,
    each with its own mask and box, so that the stand-in learns to segment what the box holds."""
    name = resolve_modality(GLI, modality)
    cases = []
    for index in range(n_cases):
        tissue, images = synth_case(shape, seed, GLI, index, "", False, lesions, GLI.modalities)
        tumour = region_mask(labels_from_tissues(tissue, GLI), GLI, "wt")
        k, _ = largest_area_slice(tumour)
        image = normalise(axial_slice(images[name], k), *intensity_range(images[name], (0.5, 99.5)))
        parts, count = ndimage.label(np.isin(axial_slice(tissue, k), LESION_TISSUES))
        masks = [axial_slice(tumour, k)] + [parts == part for part in range(1, count + 1)]
        masks = [mask.astype(np.uint8) for mask in masks if mask.sum() >= min_area]
        cases.append([SliceSample(f"standin-{index:03d}-{j}", k, image, mask, tight_box(mask))
                      for j, mask in enumerate(masks)])
    return cases


def standin_model(spec: dict) -> SamModel:
    """A tiny SAM with random weights; its Fourier positional embedding drawn with std 1 as in the
    original SAM. transformers draws it with std vision ``hidden_size / 2`` (pretrained checkpoints
    overwrite it): at that scale neighbouring positions are unrelated and a SAM trained from
    scratch does not learn where its box is."""
    model = SamModel(tiny_sam_config(**spec))
    torch.nn.init.normal_(model.shared_image_embedding.positional_embedding, std=1.0)
    return model


def write_standin(preset: str, out_dir, history_path, curve_path, cohort: dict, settings: TrainSettings,
                  device_name: str = "auto") -> None:
    """Build the tiny SAM ``preset``, train it in full on a separate synthetic cohort, save it."""
    device = resolve_device(device_name)
    spec = SAM_STANDINS[preset]
    seed_everything(settings.seed)
    model = standin_model(spec).to(device)
    processor = sam_processor(spec["image_size"])
    cases = standin_samples(**cohort)
    n_val = max(1, len(cases) // 5)
    train_samples = [sample for case in cases[n_val:] for sample in case]
    val_samples = [sample for case in cases[:n_val] for sample in case]
    log.info("stand-in %s: %d parameters, %d train / %d val objects (tumours and look-alike lesions)",
             preset, parameter_counts(model)[1], len(train_samples), len(val_samples))
    workdir = Path(f"{out_dir}.work")
    history = train(model, processor, train_samples, val_samples, settings, workdir, device)
    finish_training(history, workdir, out_dir, history_path, curve_path,
                    f"SAM stand-in {preset} (full training)", extra=processor.save_pretrained)


def train_lora_sam(base_model, slices_dir, adapter_dir, history_path, curve_path, lora: dict,
                   settings: TrainSettings, device_name: str = "auto") -> None:
    """Fine-tune SAM with LoRA on the train split, validating on the val split every epoch."""
    device = resolve_device(device_name)
    seed_everything(settings.seed)  # peft draws lora_A from torch's global generator
    model, processor = load_base(base_model, device)
    model = add_lora(model, **lora)
    trainable, total = parameter_counts(model)
    log.info("LoRA r=%d on %s: %s trainable of %s parameters (%.3f%%)", lora["r"],
             ", ".join(lora["target_modules"]), f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    train_samples, val_samples = load_split(slices_dir, "train"), load_split(slices_dir, "val")
    log.info("%d train and %d val slices from %s", len(train_samples), len(val_samples), slices_dir)
    workdir = Path(f"{adapter_dir}.work")
    history = train(model, processor, train_samples, val_samples, settings, workdir, device)
    finish_training(history, workdir, adapter_dir, history_path, curve_path, "LoRA-SAM fine-tuning")


def prompt_modes(jitters: list[int]) -> list[str]:
    """Evaluated prompt modes: the tight box, each jitter level (0 is the tight box), no prompt."""
    return ["gt_box", *[f"gt_box_jitter{n}" for n in sorted(set(jitters)) if n > 0], "no_prompt"]


def mode_box(mode: str, sample: SliceSample, seed: int):
    """The box a prompt mode gives a sample, jittered reproducibly per case; None for no prompt."""
    if mode == "no_prompt":
        return None
    if mode == "gt_box":
        return sample.box
    pixels = int(mode.removeprefix("gt_box_jitter"))
    return seeded_jitter(sample.box, pixels, sample.mask.shape, seed, sample.case_id)


@torch.no_grad()
def predict_prompts(model, processor, image: np.ndarray, prompts: dict, device, points=None,
                    embedding=None) -> dict:
    """Binary masks of a slice ``image`` for named prompts ``{name: box or None}`` and point prompts
    ``points`` ``{name: (box or None, clicks)}``, from ONE image embedding (``embedding``, or computed).

    All boxes are decoded together (each on its own); prompts without a box share one
    prompt-free decode; each point prompt is a decode of its own.
    """
    model.eval()
    boxed = [name for name, box in prompts.items() if box is not None]
    inputs = prepare(processor, [image], [[prompts[n] for n in boxed]] if boxed else None)
    if embedding is None:
        embedding = image_embeddings(model, inputs, device)
    masks = {}
    for name, (box, made) in (points or {}).items():
        prompted = prepare(processor, [image], None if box is None else [box], [made])
        logits = decode(model, processor, prompted, device, embedding)[0]
        masks[name] = (logits[0, 0] > 0).cpu().numpy().astype(np.uint8)
    if boxed:
        logits = mask_logits(model, processor, inputs, device, image_embeddings=embedding)[0]
        masks.update({name: (lg > 0).cpu().numpy().astype(np.uint8) for name, lg in zip(boxed, logits)})
    if len(boxed) < len(prompts):
        logits = mask_logits(model, processor, inputs, device, image_embeddings=embedding, with_boxes=False)
        free = (logits[0, 0] > 0).cpu().numpy().astype(np.uint8)
        masks.update({name: free for name, box in prompts.items() if box is None})
    return masks


@torch.no_grad()
def click_refinement(model, processor, image: np.ndarray, truth: np.ndarray, box, n_clicks: int,
                     device, embedding=None) -> tuple[list[np.ndarray], list[Click]]:
    """The click protocol on one slice (``sambrats.clicks.simulate``): the box's mask, then a
    correction click at a time, each decode from the slice's one image embedding (``embedding``, or
    computed) with the box, every click so far and the previous decode's low-resolution logits as
    the mask prompt. Returns the masks (the box's, then one per click) and the clicks."""
    model.eval()
    inputs = prepare(processor, [image], [box])
    if embedding is None:
        embedding = image_embeddings(model, inputs, device)
    logits, previous = decode(model, processor, inputs, device, embedding)
    fed_back = [previous]

    def predict(made, _latest):
        prompted = prepare(processor, [image], [box], [made])
        logits, low_resolution = decode(model, processor, prompted, device, embedding, previous=fed_back[-1])
        fed_back.append(low_resolution)
        return (logits[0, 0] > 0).cpu().numpy()

    return simulate(predict, truth, (logits[0, 0] > 0).cpu().numpy(), n_clicks)


def predict_modes(model, processor, sample: SliceSample, modes: list[str], seed: int, device) -> dict:
    """Masks and boxes of the study's prompt modes: ``{mode: (mask, box)}``."""
    prompts = {mode: mode_box(mode, sample, seed) for mode in modes}
    masks = predict_prompts(model, processor, sample.image, prompts, device)
    return {mode: (masks[mode], prompts[mode]) for mode in modes}


@dataclass(frozen=True)
class Prediction:
    """One method's mask of one test slice for one prompt mode (``box`` None: no prompt)."""

    method: str  # "lora_sam" or "sam_zeroshot"
    prompt: str
    mask: np.ndarray
    box: tuple[int, int, int, int] | None
    extra: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)  # the click protocol: the mask after the box and after each click
    clicks: list = field(default_factory=list)  # its clicks, or a point mode's points

    @property
    def folder(self) -> str:
        """Its folder in the predictions: the prompt mode, prefixed for zero-shot SAM."""
        return self.prompt if self.method == "lora_sam" else f"zeroshot_{self.prompt}"




def case_predictions(model, processor, sample: SliceSample, modes: list[str], seed: int, device,
                     detection=None, points=(), n_clicks: int = 0) -> list[Prediction]:
    """Zero-shot SAM with the GT box, then LoRA-SAM in every mode (plus ``yolo_box`` for a YOLO
    detection row, following its no-detection policy), every point mode of ``points`` and, with
    ``n_clicks``, the click protocol from the GT box (``gt_box_clicks``: the mask after the last
    click, every step's mask in ``steps``); one LoRA image embedding for all of them."""
    with model.disable_adapter():
        mask, box = predict_modes(model, processor, sample, ["gt_box"], seed, device)["gt_box"]
    predictions = [Prediction("sam_zeroshot", "gt_box", mask, box)]
    prompts = {mode: mode_box(mode, sample, seed) for mode in modes}
    action = None
    if detection is not None:
        action, prompts["yolo_box"] = yolo_prompt(detection)
    pointed = {mode: mode_points(mode, sample.mask, sample.box, seed, sample.case_id) for mode in points}
    model.eval()
    embedding = image_embeddings(model, prepare(processor, [sample.image]), device)
    masks = predict_prompts(model, processor, sample.image, prompts, device, pointed, embedding)
    if action == "empty_mask":
        masks["yolo_box"] = np.zeros_like(sample.mask)
    for mode, box in prompts.items():
        extra = {"fallback": detection["fallback"]} if mode == "yolo_box" else {}
        predictions.append(Prediction("lora_sam", mode, masks[mode], box, extra))
    for mode, (box, made) in pointed.items():
        predictions.append(Prediction("lora_sam", mode, masks[mode], box, clicks=made))
    if n_clicks:
        steps, made = click_refinement(model, processor, sample.image, sample.mask, sample.box, n_clicks, device,
                                       embedding)
        predictions.append(Prediction("lora_sam", CLICK_MODE, steps[-1].astype(np.uint8), sample.box, steps=steps,
                                      clicks=made))
    return predictions


def save_mode_mask(prediction: Prediction, case_id: str, folder: Path) -> None:
    """``{folder}/{mode folder}/{case}.npz`` with the mask and the box (-1s without one)."""
    (folder / prediction.folder).mkdir(exist_ok=True)
    box = np.asarray(prediction.box if prediction.box is not None else (-1, -1, -1, -1), dtype=np.int32)
    np.savez_compressed(folder / prediction.folder / f"{case_id}.npz", mask=prediction.mask, box=box)


def write_predictions(base_model, adapter_dir, slices_dir, out_dir, metrics_path, dataset: str, region: str,
                      jitters: list[int], seed: int, tolerance_mm: float, replicate: int,
                      device_name: str = "auto", yolo_boxes=None, points=(), n_clicks: int = 0,
                      clicks_path=None) -> None:
    """Masks of every prompt mode for the test split, LoRA-SAM and the base model (zero-shot,
    GT box), as ``{mode}/{case}.npz`` plus the shared per-case metrics table. With a YOLO box
    table, the mode ``yolo_box`` (the automatic pipeline) joins; ``points``: the point modes
    (``point_modes``); ``n_clicks``: the click protocol from the GT box, its per-step scores in
    ``clicks_path``. ``seed`` draws the jittered boxes and random points (the same for every
    replicate); ``replicate`` is the training seed of the adapter (the zero-shot base model's rows
    have none: it is not trained)."""
    device = resolve_device(device_name)
    base, processor = load_base(base_model, device)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(device)
    modes = prompt_modes(jitters)
    yolo = None if yolo_boxes is None else read_tsv(yolo_boxes).set_index("case_id")
    rows, steps = [], []
    with staged_directory(out_dir) as folder:
        for sample in progress(load_split(slices_dir, "test"), "SAM prompt modes", "case"):
            detection = None if yolo is None else yolo.loc[sample.case_id]
            for prediction in case_predictions(model, processor, sample, modes, seed, device, detection, points,
                                               n_clicks):
                save_mode_mask(prediction, sample.case_id, folder)
                box = "" if prediction.box is None else ",".join(map(str, prediction.box))
                extra = dict(prediction.extra)
                if prediction.clicks:
                    extra["prompt_points"] = clicks_text(prediction.clicks)
                if prediction.steps:
                    case_steps, summary = protocol_scores(sample.case_id, prediction.steps, prediction.clicks,
                                                          sample.mask, sample.spacing, tolerance_mm)
                    steps += [{**row, "seed": replicate} for row in case_steps]
                    extra.update(summary)
                rows.append(metrics_row(sample.case_id, dataset, region, prediction.method, prediction.prompt,
                                        prediction.mask, sample.mask,
                                        Path(out_dir) / prediction.folder / f"{sample.case_id}.npz",
                                        sample.spacing, tolerance_mm, prompt_box=box,
                                        seed=replicate if prediction.method == "lora_sam" else "", **extra))
    table = metrics_table(rows)
    write_tsv(table, metrics_path)
    if clicks_path is not None:
        write_tsv(pd.DataFrame(steps, columns=STEP_COLUMNS), clicks_path)
    for (method, mode), group in table.groupby(["method", "prompt"], sort=False):
        log.info("%s %s: Dice %.4f, IoU %.4f (n=%d)", method, mode, group.dice.mean(), group.iou.mean(), len(group))
