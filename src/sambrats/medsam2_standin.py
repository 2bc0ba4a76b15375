"""The demo's MedSAM-2 stand-in: sam2.1_hiera_t trained briefly on short clips of a synthetic cohort.

Like SAM 2's own video training: a clip of consecutive axial slices, a box on the first, the next
slices tracked from memory (the model's ``_track_step`` and memory encoder, as at inference). The
loss per slice is the best candidate mask's Dice + BCE, plus BCE on the object score (the head that
says whether the object is on a slice: where it is <= 0 the masks are blanked and no mask gradient
flows) and the MSE of the predicted IoU. The cohort is the demo's generator with its own seed, so
the stand-in never sees the demo cases; it is then used zero-shot like the real checkpoint.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .brats import GLI, region_mask
from .devices import resolve_device
from .outputs import staged_file, write_tsv
from .seeding import seed_everything
from .slices import largest_area_slice, tight_box
from .synth import labels_from_tissues, synth_case
from .progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipTraining:
    """The stand-in's cohort and its short clip training."""

    n_cases: int
    shape: tuple[int, int, int]
    seed: int
    modality: str
    lesions: int
    image_steps: int
    image_batch: int
    clips: int
    clip_length: int
    lr: float


@dataclass(frozen=True)
class Volume:
    """One training volume: model frames [D, 3, S, S], masks [D, S, S] and the box slices."""

    frames: torch.Tensor
    masks: torch.Tensor
    tumour_slices: np.ndarray


def training_volumes(settings: ClipTraining, image_size: int) -> list[Volume]:
    """Frames and whole-tumour masks of the stand-in cohort at the model's input size."""
    from .medsam2 import preprocess

    volumes = []
    modality = settings.modality
    for index in range(settings.n_cases):
        tissue, images = synth_case(settings.shape, settings.seed, GLI, index, "", False, settings.lesions, [modality])
        truth = region_mask(labels_from_tissues(tissue, GLI), GLI, "wt")
        masks = torch.from_numpy(np.ascontiguousarray(np.transpose(truth, (2, 1, 0)))).float()
        masks = F.interpolate(masks[:, None], size=(image_size, image_size), mode="area")[:, 0] > 0.5
        volumes.append(Volume(preprocess(images[modality], image_size), masks,
                              np.flatnonzero(masks.any(dim=(1, 2)).numpy())))
    return volumes


def box_points(mask: torch.Tensor, rng: np.random.Generator, jitter: float) -> dict:
    """The box of a mask as sam2's two corner points (labels 2, 3), each corner moved up to ``jitter`` px."""
    x0, y0, x1, y1 = tight_box(mask.numpy())
    corners = np.array([[x0, y0], [x1 + 1, y1 + 1]], dtype=np.float32)
    corners += rng.uniform(-jitter, jitter, corners.shape).astype(np.float32)
    return {"point_coords": torch.from_numpy(corners)[None], "point_labels": torch.tensor([[2, 3]], dtype=torch.int32)}


def frame_loss(sam_outputs, target: torch.Tensor) -> torch.Tensor:
    """Best candidate's Dice + BCE, IoU prediction MSE and object-score BCE for one tracked slice."""
    _, high_res_multimasks, ious, _, _, _, object_score = sam_outputs
    present = target.any()
    score_loss = F.binary_cross_entropy_with_logits(object_score.view(1), present.float().view(1))
    if not present:
        return score_loss
    logits = high_res_multimasks[0]
    target = target.float()[None].expand_as(logits)
    probs = torch.sigmoid(logits)
    overlap = (probs * target).sum(dim=(1, 2))
    soft_dice = 1 - (2 * overlap + 1) / (probs.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))
    mask_losses = soft_dice + bce
    with torch.no_grad():
        hard = logits > 0
        iou = (hard & (target > 0)).sum(dim=(1, 2)) / ((hard | (target > 0)).sum(dim=(1, 2)).clamp(min=1))
    return mask_losses.min() + F.mse_loss(ious[0], iou.float()) + score_loss


def image_features(model, frames: torch.Tensor):
    """sam2's flattened image features of the frames: (features, positions, feature sizes)."""
    _, vision_feats, vision_pos, feat_sizes = model._prepare_backbone_features(model.forward_image(frames))
    return vision_feats, vision_pos, feat_sizes


def empty_memory() -> dict:
    """sam2's per-object output store, before any slice is tracked."""
    return {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}


def clip_loss(model, frames: torch.Tensor, masks: torch.Tensor, prompt: dict, reverse: bool) -> torch.Tensor:
    """Box on the first slice of the clip, the others tracked from memory: the summed slice losses."""
    vision_feats, vision_pos, feat_sizes = image_features(model, frames)
    output_dict = empty_memory()
    n_frames = len(frames)
    losses = []
    for step in range(n_frames):
        frame = n_frames - 1 - step if reverse else step
        feats = [x[:, frame : frame + 1] for x in vision_feats]
        pos = [x[:, frame : frame + 1] for x in vision_pos]
        points = prompt if step == 0 else None
        current, sam_outputs, _, _ = model._track_step(
            frame, step == 0, feats, pos, feat_sizes, points, None, output_dict, n_frames, reverse, None)
        _, _, _, low_res, high_res, obj_ptr, object_score = sam_outputs
        current.update(pred_masks=low_res, pred_masks_high_res=high_res, obj_ptr=obj_ptr)
        model._encode_memory_in_output(feats, feat_sizes, points, True, high_res, object_score, current)
        output_dict["cond_frame_outputs" if step == 0 else "non_cond_frame_outputs"][frame] = current
        losses.append(frame_loss(sam_outputs, masks[frame]))
    return torch.stack(losses).sum()


def image_loss(model, frames: torch.Tensor, masks: torch.Tensor, prompts: dict) -> torch.Tensor:
    """Each slice on its own with its box (image mode, no memory): the summed slice losses."""
    vision_feats, vision_pos, feat_sizes = image_features(model, frames)
    _, sam_outputs, _, _ = model._track_step(0, True, vision_feats, vision_pos, feat_sizes, prompts, None,
                                             empty_memory(), 1, False, None)
    return torch.stack([frame_loss([output[b : b + 1] for output in sam_outputs], masks[b])
                        for b in range(len(frames))]).sum()


def sample_clip(volume: Volume, length: int, rng: np.random.Generator):
    """A clip starting on a tumour slice, running up or down the volume (may leave the tumour)."""
    start = int(rng.choice(volume.tumour_slices))
    reverse = bool(rng.random() < 0.5)
    depth = len(volume.frames)
    first, last = (max(0, start - length + 1), start + 1) if reverse else (start, min(depth, start + length))
    return slice(first, last), reverse


def slices_step(model, volumes: list[Volume], settings: ClipTraining, rng, device) -> tuple[torch.Tensor, int]:
    """Loss of one batch of prompted tumour slices from random volumes (image mode)."""
    picked = [volumes[int(i)] for i in rng.integers(len(volumes), size=settings.image_batch)]
    chosen = [(volume, int(rng.choice(volume.tumour_slices))) for volume in picked]
    masks = torch.stack([volume.masks[k] for volume, k in chosen])
    prompts = [box_points(mask, rng, jitter=2.0) for mask in masks]
    prompt = {key: torch.cat([p[key] for p in prompts]).to(device) for key in prompts[0]}
    frames = torch.stack([volume.frames[k] for volume, k in chosen])
    return image_loss(model, frames.to(device), masks.to(device), prompt), len(masks)


def clip_step(model, volumes: list[Volume], settings: ClipTraining, rng, device) -> tuple[torch.Tensor, int]:
    """Loss of one clip of a random volume, prompted on its first slice in tracking order."""
    volume = volumes[int(rng.integers(len(volumes)))]
    span, reverse = sample_clip(volume, settings.clip_length, rng)
    masks = volume.masks[span]
    prompt = box_points(masks[len(masks) - 1 if reverse else 0], rng, jitter=2.0)
    prompt = {key: value.to(device) for key, value in prompt.items()}
    return clip_loss(model, volume.frames[span].to(device), masks.to(device), prompt, reverse), len(masks)


def train_standin(model, volumes: list[Volume], settings: ClipTraining, device: torch.device) -> pd.DataFrame:
    """Adam on every parameter (cosine decay): prompted slices, then clips; the loss per slice of each step.
    torch's fused Adam: one pass over the 39 M parameters per step instead of several."""
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, settings.image_steps + settings.clips))
    model.train()
    history = []
    for phase, step_loss, steps in (("slices", slices_step, settings.image_steps), ("clips", clip_step, settings.clips)):
        for step in progress(range(1, steps + 1), f"MedSAM-2 stand-in, {phase}", "step"):
            loss, n_slices = step_loss(model, volumes, settings, rng, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            history.append({"phase": phase, "step": step, "slices": n_slices, "loss": loss.item() / n_slices})
            if step % 50 == 0:
                log.info("%s step %d: loss per slice %.4f", phase, step, history[-1]["loss"])
    return pd.DataFrame(history, columns=["phase", "step", "slices", "loss"])


def write_standin(path, history_path, image_size: int, settings: ClipTraining, device_name: str = "auto") -> None:
    """Train the stand-in on its own cohort and save it in MedSAM-2's checkpoint format."""
    from .medsam2 import build_model

    device = resolve_device(device_name)
    seed_everything(settings.seed)
    predictor = build_model(image_size, device)
    volumes = training_volumes(settings, image_size)
    log.info("MedSAM-2 stand-in: %d %s volumes, %d steps of %d slices, %d clips of %d slices, at %d px",
             len(volumes), settings.modality, settings.image_steps, settings.image_batch, settings.clips,
             settings.clip_length, image_size)
    history = train_standin(predictor, volumes, settings, device)
    state = {name: tensor.detach().cpu() for name, tensor in predictor.state_dict().items()}
    content = io.BytesIO()  # torch names the archive after the file: the staging name would differ each run
    torch.save({"model": state, "standin": "sam2.1_hiera_t trained on synthetic clips", "image_size": image_size},
               content)
    with staged_file(path) as tmp:
        tmp.write_bytes(content.getvalue())
    write_tsv(history, history_path)
