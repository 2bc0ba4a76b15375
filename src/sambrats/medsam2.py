"""MedSAM-2 zero-shot volumetric segmentation with Meta's ``sam2`` package (1.1.0).

MedSAM-2 is ``sam2.1_hiera_t`` at 512 px: the model is built from the package's own config with
Hydra overrides for the image size (and the memory-attention RoPE feature sizes = size / 16; below
224 px, Hiera's attention windows clamped to its feature maps, see :func:`trunk_windows`).
Checkpoints are ``{"model": state_dict}`` files, read with ``weights_only=True`` and loaded
strictly. Axial slices are the frames of the "video"; the box goes on the key slice, masks
propagate forwards and backwards from it and are united. The key slice and box come from the ground
truth (largest area, the oracle) or from the detector (its most confident box over the volume,
:func:`predict_detected`, the automatic row).

Frames are fed as a tensor, not as JPEGs: sam2 1.1.0's ``init_state`` reads frames through
``sam2.sam2_video_predictor.load_video_frames``; :func:`frames_from_tensor` swaps that loader for
one that returns our preprocessed tensor for the duration of ``init_state``. The image encoder runs
once per frame, in batches (:func:`cache_frame_features`), not once per frame and direction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage

from .clicks import CLICK_MODE, STEP_COLUMNS, Click, clicks_text, mode_points, protocol_scores, simulate
from .brats import get_layout, load_labels, read_volume, region_mask, resolve_contrasts, save_mask
from .detection import DETECTION_COLUMNS, detection_row, key_slice_prompt
from .devices import autocast, resolve_device
from .metrics import dice, metrics_row, metrics_table
from .outputs import read_tsv, staged_directory, write_tsv
from .plotting import pyplot
from .seeding import seed_everything
from .slices import axial_slice, axial_spacing, intensity_range, largest_area_slice, normalise, seeded_jitter, tight_box
from .progress import progress
from .scoring import test_cases

log = logging.getLogger(__name__)

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HIERA_WINDOWS = (8, 4, 14, 7)  # sam2's Hiera attention window per stage (its default, sized for 512-1024 px)


@dataclass(frozen=True)
class MedsamSettings:
    """How MedSAM-2 segments a volume (config ``medsam2``, plus the shared seed, clipping and NSD
    tolerance)."""

    image_size: int
    checkpoint_image_size: int  # the size a checkpoint that does not record one was trained at
    box_jitter: int
    largest_component: bool
    offload_video_to_cpu: bool
    offload_state_to_cpu: bool
    encoder_batch: int
    overlays: int
    seed: int
    clip_percentiles: tuple[float, float]
    nsd_tolerance_mm: float


@dataclass(frozen=True)
class BatchJob:
    """One batch of one dataset's cases for one region: batch ``index`` of ``count``."""

    dataset: str
    layout: str
    contrasts: tuple[str, ...]  # one, or three (the frames' channels)
    region: str
    index: int
    count: int


@dataclass(frozen=True)
class Segmentation:
    """MedSAM-2's result on one case: prediction and truth [i, j, k], the image, the key slice, the
    box on it and the frames visited per direction."""

    prediction: np.ndarray
    truth: np.ndarray
    image: nib.Nifti1Image
    key: int
    box: tuple[int, int, int, int]
    visits: dict


def trunk_windows(image_size: int) -> list[int]:
    """Hiera's attention window per stage, none larger than its stage's feature map (size / 4, / 8,
    / 16, / 32). sam2 pads a window larger than the map with zero tokens, which attend and cost
    (at 64 px the 4 x 4 map of stage 3 padded to 14 x 14: 12 times the work of its blocks); from
    224 px up (MedSAM-2's 512) the windows are sam2's own. Parameter shapes do not depend on them."""
    return [min(window, image_size // (4 * 2**stage)) for stage, window in enumerate(HIERA_WINDOWS)]


def hydra_overrides(image_size: int) -> list[str]:
    """Overrides that turn the packaged hiera_t config into a model for ``image_size`` input."""
    if image_size % 32:
        raise ValueError(f"MedSAM-2 image size must be a multiple of 32 (Hiera's stride), got {image_size}")
    feat = image_size // 16
    overrides = [
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]
    windows = trunk_windows(image_size)
    if tuple(windows) != HIERA_WINDOWS:
        overrides.append(f"++model.image_encoder.trunk.window_spec=[{','.join(map(str, windows))}]")
    return overrides


def build_model(image_size: int, device: torch.device):
    """The SAM2 video predictor without weights."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(CONFIG, ckpt_path=None, device=str(device),
                                           hydra_overrides_extra=hydra_overrides(image_size))
    predictor.fill_hole_area = 0  # the hole filling needs sam2's CUDA extension, not built here
    # a frame that gets a correction click becomes a conditioning frame, as in SAM 2's interactive
    # training; with sam2's default (False) the click's output is a tracked frame's, and the
    # re-propagation from that frame tracks it again without the click and loses it
    predictor.add_all_frames_to_correct_as_cond = True
    return predictor


def load_predictor(checkpoint, image_size: int, device: torch.device, checkpoint_image_size: int = 512):
    """Build the predictor and load a MedSAM-2 checkpoint strictly (names any key at fault). The
    weights fit sam2.1_hiera_t at any input size, so the size is checked: the one the file records
    (the stand-in), else ``checkpoint_image_size`` (MedSAM2_latest.pt: 512), must be ``image_size``."""
    checkpoint = Path(checkpoint)
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read MedSAM-2 checkpoint {checkpoint}: {err}") from err
    if not isinstance(content, dict) or "model" not in content:
        raise ValueError(f"{checkpoint} is not a MedSAM-2 checkpoint: no 'model' entry")
    trained = int(content.get("image_size", checkpoint_image_size))
    if trained != image_size:
        source = "as the file records" if "image_size" in content else "by medsam2.checkpoint_image_size"
        raise ValueError(
            f"MedSAM-2 checkpoint {checkpoint} was trained at {trained} px ({source}) but medsam2.image_size "
            f"is {image_size}: it would run at the wrong scale. Set medsam2.image_size: {trained}, or, for a "
            "checkpoint you know was trained at another size, medsam2.checkpoint_image_size"
        )
    predictor = build_model(image_size, device)
    try:
        predictor.load_state_dict(content["model"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"MedSAM-2 checkpoint {checkpoint} does not fit sam2.1_hiera_t: {err}") from err
    return predictor.to(device).eval()


def preprocess(volume, image_size: int, percentiles=(0.5, 99.5)) -> torch.Tensor:
    """MedSAM-2's MRI preprocessing: frames [D, 3, S, S] from a volume [i, j, k] (its slices in all
    three channels), or from a sequence of three volumes of one case (one per channel).

    Clip to the percentiles of the non-zero voxels, rescale to 0-255 (background stays 0), each
    axial slice (row = j, column = i) resized bicubically to S, three channels, /255, ImageNet norm.
    """
    volumes = [volume] if isinstance(volume, np.ndarray) else list(volume)
    channels = []
    for one in volumes:
        scaled = normalise(one, *intensity_range(one, percentiles)) * 255
        frames = torch.from_numpy(np.ascontiguousarray(np.transpose(scaled, (2, 1, 0)))).float()
        channels.append(F.interpolate(frames[:, None], size=(image_size, image_size), mode="bicubic",
                                      align_corners=False))
    frames = channels[0].repeat(1, 3, 1, 1) if len(channels) == 1 else torch.cat(channels, dim=1)
    frames = frames.clamp(0, 255) / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (frames - mean) / std


@contextlib.contextmanager
def frames_from_tensor(frames: torch.Tensor, height: int, width: int):
    """Make sam2's ``init_state`` take ``frames`` instead of reading a JPEG folder or MP4."""
    import sam2.sam2_video_predictor as video

    original = video.load_video_frames
    video.load_video_frames = lambda *args, **kwargs: (frames, height, width)
    try:
        yield
    finally:
        video.load_video_frames = original


def cache_frame_features(predictor, state: dict, batch: int) -> None:
    """Put every frame's image features into sam2's feature cache (``cached_features``, frame ->
    (image, backbone output), which sam2 1.1.0 fills with one frame at a time), computed in batches
    of ``batch`` frames: both propagation directions then reuse them. The position encodings depend
    on the feature shape only (sam2 caches them by shape), so one copy serves every frame."""
    images, device = state["images"], state["device"]
    cache, positions = {}, None
    for first in range(0, len(images), batch):
        features = predictor.forward_image(images[first : first + batch].to(device).float())
        if positions is None:
            positions = [level[:1].clone() for level in features["vision_pos_enc"]]
        for frame in range(first, min(first + batch, len(images))):
            levels = [level[frame - first : frame - first + 1] for level in features["backbone_fpn"]]
            cache[frame] = (images[frame : frame + 1], {"backbone_fpn": levels, "vision_pos_enc": positions})
    state["cached_features"] = cache


DIRECTIONS = {"forward": False, "backward": True}  # sam2's ``reverse`` of each propagation direction


class Session:
    """MedSAM-2 on one volume, both propagation directions kept open for further prompts: one sam2
    inference state per direction (MedSAM-2 propagates each from a fresh state) sharing one cache of
    frame features, so that a prompt on the key slice or a correction click anywhere re-propagates
    without another encoder pass. Prompts are sam2's: points (x, y) and boxes (x0, y0, x1, y1) in the
    frame's pixels, labels 1 (the region) and 0 (not)."""

    def __init__(self, predictor, frames: torch.Tensor, height: int, width: int, device,
                 offload_video: bool = False, offload_state: bool = False, encoder_batch: int = 16):
        self.predictor, self.device = predictor, device
        self.shape = (frames.shape[0], height, width)
        with frames_from_tensor(frames, height, width):
            self.states = {direction: predictor.init_state(video_path="<tensor>", offload_video_to_cpu=offload_video,
                                                           offload_state_to_cpu=offload_state)
                           for direction in DIRECTIONS}
        with torch.inference_mode(), autocast(device):
            cache_frame_features(predictor, self.states["forward"], encoder_batch)
        self.states["backward"]["cached_features"] = self.states["forward"]["cached_features"]
        self.key, self.prompts, self.masks, self.visits = None, {}, {}, {}

    def start(self, key: int, box=None, points=()) -> np.ndarray:
        """Forget every prompt; ``box`` and ``points`` (((x, y), positive) pairs) on frame ``key``,
        propagated both ways from it. Returns the union of the directions' masks [D, H, W]."""
        self.key, self.prompts = key, {key: (box, list(points))}
        self.masks = {direction: {} for direction in DIRECTIONS}
        for direction, state in self.states.items():
            self.predictor.reset_state(state)
            self.visits[direction] = self.prompt_and_propagate(direction, key)
        return self.mask()

    def click(self, frame: int, point, positive: bool) -> np.ndarray:
        """Add a click on ``frame`` to its prompts (sam2 refines that frame from its tracked mask and
        memory), then re-propagate from it away from the key slice in each direction it belongs to."""
        box, points = self.prompts.get(frame, (None, []))
        self.prompts[frame] = (box, points + [(tuple(point), positive)])
        for direction, reverse in DIRECTIONS.items():
            if (frame <= self.key) if reverse else (frame >= self.key):
                self.prompt_and_propagate(direction, frame)
        return self.mask()

    def prompt_and_propagate(self, direction: str, frame: int) -> list[int]:
        """Give ``frame`` all its prompts in one direction's state and propagate from it; the frames visited."""
        box, points = self.prompts[frame]
        arguments = {} if box is None else {"box": np.asarray(box, dtype=np.float32)}
        if points:
            arguments["points"] = np.asarray([xy for xy, _ in points], dtype=np.float32)
            arguments["labels"] = np.asarray([int(positive) for _, positive in points], dtype=np.int32)
        state, visited = self.states[direction], []
        with torch.inference_mode(), autocast(self.device):
            self.predictor.add_new_points_or_box(state, frame_idx=frame, obj_id=1, **arguments)
            for index, _, logits in self.predictor.propagate_in_video(state, start_frame_idx=frame,
                                                                      reverse=DIRECTIONS[direction]):
                self.masks[direction][index] = (logits[0, 0] > 0).cpu().numpy()
                visited.append(index)
        return visited

    def mask(self) -> np.ndarray:
        """The union [D, H, W] of the directions' latest masks."""
        return unite(self.shape, {direction: masks.items() for direction, masks in self.masks.items()})


def propagate(predictor, frames: torch.Tensor, height: int, width: int, key: int, box, device,
              offload_video: bool = False, offload_state: bool = False, encoder_batch: int = 16):
    """3D mask [D, H, W] (union of forward and backward propagation from the key slice) and the
    frames visited per direction."""
    session = Session(predictor, frames, height, width, device, offload_video, offload_state, encoder_batch)
    mask = session.start(key, box)
    return mask, dict(session.visits)


def unite(shape, per_direction: dict) -> np.ndarray:
    """Union [D, H, W] of the per-direction (frame, mask) lists."""
    volume = np.zeros(shape, dtype=bool)
    for masks in per_direction.values():
        for frame, mask in masks:
            volume[frame] |= mask.astype(bool)
    return volume


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D mask (empty stays empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (np.argmax(sizes) + 1)


def open_session(predictor, volumes, settings: MedsamSettings, device) -> Session:
    """A MedSAM-2 session on one volume (its contrasts' arrays): frames preprocessed and encoded once."""
    frames = preprocess(volumes, settings.image_size, settings.clip_percentiles)
    height, width = volumes[0].shape[1], volumes[0].shape[0]
    return Session(predictor, frames, height, width, device, settings.offload_video_to_cpu,
                   settings.offload_state_to_cpu, settings.encoder_batch)


def volume_mask(masks: np.ndarray, settings: MedsamSettings) -> np.ndarray:
    """A session's frames [D, H, W] as the volume's mask [i, j, k], post-processed as configured."""
    prediction = np.transpose(masks, (2, 1, 0))
    return largest_component(prediction) if settings.largest_component else prediction


def segment_from_box(predictor, volumes, key: int, box, settings: MedsamSettings, device):
    """MedSAM-2's mask [i, j, k] of one volume (its contrasts' arrays) from one box on slice ``key``,
    propagated both ways, and the frames visited per direction."""
    session = open_session(predictor, volumes, settings, device)
    prediction = volume_mask(session.start(key, box), settings)
    return prediction, dict(session.visits)


def sam2_points(clicks: list[Click]) -> list:
    """Clicks on the key slice (``axial_slice``: row j, column i) as sam2's ((x, y), positive) = ((i, j), ...)."""
    return [(click.xy, click.positive) for click in clicks]


def prompt_predictions(session: Session, truth: np.ndarray, modes: list[str], n_clicks: int, settings: MedsamSettings,
                       case_id: str) -> tuple[dict, list[np.ndarray] | None]:
    """One volume's masks [i, j, k] for each point mode (``sambrats.clicks.mode_points`` on the key
    slice: its most interior point, seeded random points, the GT box with the interior point) and,
    with ``n_clicks``, the CVPR 2025 click protocol in 3D: the GT box on the key slice, then each
    correction click (on the largest 26-connected error of the whole volume) added on its own frame
    and re-propagated, from the session's one encoding of the frames. Returns ``{mode: (mask, box,
    points or clicks)}`` (``gt_box_clicks``: after the last click) and the protocol's masks per step
    (None without clicks)."""
    key, _ = largest_area_slice(truth)
    key_mask = axial_slice(truth, key)
    box = tight_box(key_mask)
    masks = {}
    for mode in modes:
        mode_box, points = mode_points(mode, key_mask, box, settings.seed, case_id)
        masks[mode] = (volume_mask(session.start(key, mode_box, sam2_points(points)), settings), mode_box, points)
    if not n_clicks:
        return masks, None
    first = volume_mask(session.start(key, box), settings)

    def predict(made, _latest):
        frame, point = made[-1].frame_point
        return volume_mask(session.click(frame, point, made[-1].positive), settings)

    steps, made = simulate(predict, truth, first, n_clicks)
    masks[CLICK_MODE] = (steps[-1], box, made)
    return masks, steps


def predict_prompted(checkpoint, cases_path, splits_path, out_dir, metrics_path, clicks_path, job: BatchJob,
                     modes: list[str], n_clicks: int, n_cases: int | None, settings: MedsamSettings,
                     device_name: str = "auto") -> None:
    """MedSAM-2's point modes and click protocol (rule medsam2_prompts) on the test cases that hold
    the region (the first ``n_cases`` in case order; None: all): ``{mode}/{case}.nii.gz`` in
    ``out_dir``, the per-case metrics (mode ``gt_box_clicks``: after the last click, with its Dice
    and NSD AUC) and every protocol step's scores in ``clicks_path``."""
    device = resolve_device(device_name)
    seed_everything(settings.seed)
    predictor = load_predictor(checkpoint, settings.image_size, device, settings.checkpoint_image_size)
    layout = get_layout(job.layout)
    cases = read_tsv(cases_path).set_index("case_id")
    names = resolve_contrasts(layout, job.contrasts)
    rows, steps, prompted = [], [], 0
    with staged_directory(out_dir) as folder:
        for case_id in progress(test_cases(splits_path), "MedSAM-2 points and clicks", "case"):
            if n_cases is not None and prompted == n_cases:
                break
            _, seg = load_labels(Path(cases.loc[case_id, "seg"]), layout)
            truth = region_mask(seg, layout, job.region)
            if not truth.any():
                log.info("%s: region %r absent, no prompt to give", case_id, job.region)
                continue
            prompted += 1
            image, volumes = read_contrasts([cases.loc[case_id, name] for name in names])
            session = open_session(predictor, volumes, settings, device)
            masks, protocol = prompt_predictions(session, truth, modes, n_clicks, settings, case_id)
            zooms = image.header.get_zooms()[:3]
            summary = {}
            if protocol is not None:
                case_steps, summary = protocol_scores(case_id, protocol, masks[CLICK_MODE][2], truth, zooms,
                                                      settings.nsd_tolerance_mm)
                steps += [{**row, "seed": ""} for row in case_steps]
            for mode, (mask, box, points) in masks.items():
                (folder / mode).mkdir(exist_ok=True)
                save_mask(mask, image, folder / mode / f"{case_id}.nii.gz")
                rows.append(metrics_row(case_id, job.dataset, job.region, "medsam2", mode, mask, truth,
                                        Path(out_dir) / mode / f"{case_id}.nii.gz", zooms, settings.nsd_tolerance_mm,
                                        prompt_box="" if box is None else ",".join(map(str, box)),
                                        prompt_points=clicks_text(points), split="test",
                                        **(summary if mode == CLICK_MODE else {})))
            log.info("%s: %s", case_id, ", ".join(f"{row['prompt']} {row['dice']:.4f}" for row in rows[-len(masks):]))
    write_tsv(metrics_table(rows), metrics_path)
    write_tsv(pd.DataFrame(steps, columns=STEP_COLUMNS), clicks_path)


def read_contrasts(paths) -> tuple[nib.Nifti1Image, list[np.ndarray]]:
    """The first contrast's image and every contrast's array of one case."""
    image, volume = read_volume(Path(paths[0]))
    return image, [volume] + [read_volume(Path(path))[1] for path in paths[1:]]


def segment_case(predictor, row: dict, job: BatchJob, settings: MedsamSettings, device) -> Segmentation:
    """MedSAM-2 on one case of the batch (``row``: its cases-table row, contrasts resolved). The
    prompt comes from the ground truth: a case without the region has none, and this oracle
    predicts an empty mask (key and box None), scored by the empty-mask conventions."""
    image, volumes = read_contrasts([row[name] for name in job.contrasts])
    _, seg = load_labels(Path(row["seg"]), get_layout(job.layout))
    truth = region_mask(seg, get_layout(job.layout), job.region)
    key, area = largest_area_slice(truth)
    if area == 0:
        return Segmentation(np.zeros_like(truth), truth, image, None, None, {})
    key_mask = axial_slice(truth, key)
    box = tight_box(key_mask)
    if settings.box_jitter:
        box = seeded_jitter(box, settings.box_jitter, key_mask.shape, settings.seed, row["case_id"])
    prediction, visits = segment_from_box(predictor, volumes, key, box, settings, device)
    return Segmentation(prediction, truth, image, key, box, visits)


def case_metrics(case_id: str, job: BatchJob, result: Segmentation, slice_index, mask_file,
                 tolerance_mm: float) -> tuple[dict, dict | None]:
    """Rows of the 3D table and of the table restricted to the slice dataset's slice (the key
    slice where the case has none; no row for a case without the region, which has no slice)."""
    prediction, truth, key = result.prediction, result.truth, result.key
    zooms = result.image.header.get_zooms()[:3]
    voxel_ml = float(np.prod(zooms)) / 1000
    row3d = metrics_row(
        case_id, job.dataset, job.region, "medsam2", "3d", prediction, truth, mask_file, zooms, tolerance_mm,
        key_slice=key, prompt_box="" if result.box is None else ",".join(map(str, result.box)),
        key_slice_dice=np.nan if key is None else dice(prediction[:, :, key], truth[:, :, key]),
        volume_true_ml=truth.sum() * voxel_ml, volume_pred_ml=prediction.sum() * voxel_ml,
        slices_predicted=int(prediction.any(axis=(0, 1)).sum()),
    )
    if key is None:
        return row3d, None
    k = key if slice_index is None else int(slice_index)
    row2d = metrics_row(case_id, job.dataset, job.region, "medsam2", "key_slice", axial_slice(prediction, k),
                        axial_slice(truth, k), mask_file, axial_spacing(zooms), tolerance_mm, slice_index=k)
    return row3d, row2d


def plot_overlay(image_volume, truth, prediction, key, path, title) -> None:
    """Axial (key slice), coronal and sagittal planes through the tumour, GT and prediction contours."""
    plt = pyplot()
    centre = [int(np.round(c)) for c in ndimage.center_of_mass(truth)]
    planes = (("axial (key slice)", lambda v: v[:, :, key].T),
              ("coronal", lambda v: np.flipud(v[:, centre[1], :].T)),
              ("sagittal", lambda v: np.flipud(v[centre[0], :, :].T)))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for axis, (name, cut) in zip(axes, planes):
        axis.imshow(cut(image_volume), cmap="gray")
        axis.contour(cut(truth.astype(float)), levels=[0.5], colors="lime", linewidths=1.2)
        if cut(prediction).any():
            axis.contour(cut(prediction.astype(float)), levels=[0.5], colors="red", linewidths=1.0)
        axis.set_title(name)
        axis.axis("off")
    handles = [plt.Line2D([], [], color="lime", label="ground truth"), plt.Line2D([], [], color="red", label="MedSAM-2")]
    fig.legend(handles=handles, loc="lower center", ncol=2)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def batch_cases(cases: pd.DataFrame, splits: pd.DataFrame, batch: int, n_batches: int) -> pd.DataFrame:
    """The cases of one batch (every n-th accepted case, in case order) with their split: zero-shot
    needs no training data, so MedSAM-2 segments every case, and the comparison picks the test split."""
    chosen = sorted(cases.case_id)[batch::n_batches]
    batch_table = cases[cases.case_id.isin(chosen)].sort_values("case_id")
    return batch_table.merge(splits[["case_id", "split"]], on="case_id", how="left")


def slice_indices(slices_index) -> dict[str, int]:
    """Case id -> slice of the slice dataset (empty without one)."""
    if not slices_index or not Path(slices_index).is_file():
        return {}
    index = read_tsv(slices_index)
    return dict(zip(index.case_id, index.slice_index))


def predict_batch(checkpoint, cases_path, splits_path, slices_index, out_dir, predictions_dir, job: BatchJob,
                  settings: MedsamSettings, device_name: str = "auto") -> None:
    """One batch of cases: NIfTI masks, both metrics tables (with each case's split) and overlay PNGs
    in ``out_dir``; the tables point at the masks' final place in ``predictions_dir``."""
    device = resolve_device(device_name)
    seed_everything(settings.seed)
    predictor = load_predictor(checkpoint, settings.image_size, device, settings.checkpoint_image_size)
    cases = batch_cases(read_tsv(cases_path), read_tsv(splits_path), job.index, job.count)
    job = replace(job, contrasts=tuple(resolve_contrasts(get_layout(job.layout), job.contrasts)))
    slice_of = slice_indices(slices_index)
    rows3d, rows2d, skipped = [], [], []
    with staged_directory(out_dir) as folder:
        for number, row in enumerate(progress(cases.to_dict("records"), f"MedSAM-2 {job.dataset}", "case")):
            result = segment_case(predictor, row, job, settings, device)
            save_mask(result.prediction, result.image, folder / f"{row['case_id']}.nii.gz")
            row3d, row2d = case_metrics(row["case_id"], job, result, slice_of.get(row["case_id"]),
                                        Path(predictions_dir) / f"{row['case_id']}.nii.gz", settings.nsd_tolerance_mm)
            rows3d.append({**row3d, "split": row["split"]})
            if row2d is None:
                reason = f"region {job.region!r} is empty in {row['seg']}: no box to prompt, an empty mask scored"
                log.warning("%s: %s", row["case_id"], reason)
                skipped.append({"case_id": row["case_id"], "reason": reason})
                continue
            rows2d.append({**row2d, "split": row["split"]})
            log.info("%s: 3D Dice %.4f, key-slice Dice %.4f", row["case_id"], row3d["dice"], row3d["key_slice_dice"])
            if job.index == 0 and number < settings.overlays:
                plot_overlay(np.asanyarray(result.image.dataobj), result.truth, result.prediction, result.key,
                             folder / f"{row['case_id']}.overlay.png",
                             f"{row['case_id']} ({row['split']} split): MedSAM-2 3D Dice {row3d['dice']:.3f}")
        write_tsv(metrics_table(rows3d), folder / "metrics.tsv")
        write_tsv(metrics_table(rows2d), folder / "metrics_2d.tsv")
        write_tsv(pd.DataFrame(skipped, columns=["case_id", "reason"]), folder / "skipped.tsv")


def collect_batches(batch_dirs, predictions_dir, metrics_path, metrics_2d_path, skipped_path) -> None:
    """Masks and overlays of every batch into one folder; the batch tables concatenated."""
    with staged_directory(predictions_dir) as folder:
        for batch in batch_dirs:
            for item in Path(batch).iterdir():
                if item.suffix in (".gz", ".png"):
                    shutil.copy2(item, folder / item.name)
    for name, path in (("metrics.tsv", metrics_path), ("metrics_2d.tsv", metrics_2d_path),
                       ("skipped.tsv", skipped_path)):
        tables = [read_tsv(Path(batch) / name) for batch in batch_dirs]
        write_tsv(pd.concat(tables, ignore_index=True).sort_values("case_id"), path)


def predict_detected(checkpoint, cases_path, splits_path, detections_path, masks_dir, prompts_path, layout_name: str,
                     contrasts, settings: MedsamSettings, device_name: str = "auto") -> None:
    """MedSAM-2 prompted by the detector (rule medsam2_automatic): on every test volume, the most
    confident detection of its slices (the detector's table) is the key slice and its box; a
    volume without a detection gets an empty mask. ``{case}.nii.gz`` in ``masks_dir`` and the
    prompts table (one row per prompted volume); no segmentation is read."""
    device = resolve_device(device_name)
    seed_everything(settings.seed)
    predictor = load_predictor(checkpoint, settings.image_size, device, settings.checkpoint_image_size)
    names = resolve_contrasts(get_layout(layout_name), contrasts)
    cases = read_tsv(cases_path).set_index("case_id")
    detections = read_tsv(detections_path)
    rows = []
    with staged_directory(masks_dir) as folder:
        for case_id in progress(test_cases(splits_path), "MedSAM-2 from the detector's key slice", "case"):
            image, volumes = read_contrasts([cases.loc[case_id, name] for name in names])
            prompt = key_slice_prompt(detections, case_id)
            if prompt is None:
                prediction = np.zeros(volumes[0].shape, dtype=bool)
                log.warning("%s: no detection on any slice: an empty mask", case_id)
            else:
                key, (box, confidence) = prompt
                prediction, _ = segment_from_box(predictor, volumes, key, box, settings, device)
                rows.append(detection_row(case_id, key, (box, confidence)))
                log.info("%s: key slice %d, box %s (confidence %.3f), %d mask voxels", case_id, key, box, confidence,
                         int(prediction.sum()))
            save_mask(prediction, image, folder / f"{case_id}.nii.gz")
    write_tsv(pd.DataFrame(rows, columns=DETECTION_COLUMNS), prompts_path)
