"""MedSAM-2: preprocessing, strict loading, propagation, union, largest component, 3D metrics."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from sambrats import medsam2
from sambrats.brats import LEGACY, discover
from sambrats.metrics import WORST_HD95_MM
from sambrats.medsam2_standin import ClipTraining, write_standin
from sambrats.outputs import read_tsv, write_tsv
from sambrats.synth import write_cohort

CPU = torch.device("cpu")
SIZE = 32
# A few steps of the stand-in training: the real training code, not a model that segments.
BRIEF = ClipTraining(n_cases=2, shape=(32, 32, 16), seed=3, modality="t1n", lesions=1, image_steps=2,
                     image_batch=2, clips=2, clip_length=3, lr=3e-4)


SETTINGS = medsam2.MedsamSettings(image_size=SIZE, checkpoint_image_size=512, box_jitter=0, largest_component=True,
                                  offload_video_to_cpu=False, offload_state_to_cpu=False, encoder_batch=4, overlays=1, seed=0,
                                  clip_percentiles=(0.5, 99.5), nsd_tolerance_mm=2.0)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    path = tmp_path_factory.mktemp("medsam2") / "standin.pt"
    write_standin(path, path.with_suffix(".history.tsv"), SIZE, BRIEF, "cpu")
    return path


def test_the_stand_in_records_its_training_and_the_same_settings_give_the_same_bytes(standin, tmp_path):
    history = read_tsv(standin.with_suffix(".history.tsv"))
    assert history.phase.tolist() == ["slices"] * 2 + ["clips"] * 2
    assert (history.slices[2:] <= 3).all() and np.isfinite(history.loss).all()
    content = torch.load(standin, weights_only=True)
    assert content["image_size"] == SIZE and "synthetic" in content["standin"]
    again = tmp_path / "again.pt"
    write_standin(again, tmp_path / "again.tsv", SIZE, BRIEF, "cpu")
    assert again.read_bytes() == standin.read_bytes()


def undo_normalisation(frames: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(medsam2.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(medsam2.IMAGENET_STD).view(1, 3, 1, 1)
    return ((frames * std + mean) * 255).numpy()


def test_three_contrasts_are_the_frames_channels_each_preprocessed_as_one_alone():
    rng = np.random.default_rng(4)
    volumes = [rng.uniform(0, scale, (8, 8, 3)).astype(np.float32) for scale in (1, 50, 900)]
    frames = medsam2.preprocess(volumes, 16)
    assert frames.shape == (3, 3, 16, 16)
    for channel, volume in enumerate(volumes):
        np.testing.assert_array_equal(frames[:, channel], medsam2.preprocess(volume, 16)[:, channel])
    assert not np.allclose(frames[:, 0], frames[:, 1])


def test_preprocessing_clips_to_non_zero_percentiles_and_keeps_background_zero():
    volume = np.zeros((8, 8, 3), dtype=np.float32)
    volume[2:6, 2:6, :] = np.arange(1, 49, dtype=np.float32).reshape(4, 4, 3)
    frames = medsam2.preprocess(volume, 8, percentiles=(10, 90))
    assert frames.shape == (3, 3, 8, 8)
    pixels = undo_normalisation(frames)
    np.testing.assert_allclose(pixels[:, 0], pixels[:, 1], atol=1e-4)  # three equal channels
    low, high = np.percentile(np.arange(1, 49), [10, 90])
    expected = np.where(volume > 0, (np.clip(volume, low, high) - low) / (high - low) * 255, 0)
    np.testing.assert_allclose(pixels[:, 0], np.transpose(expected, (2, 1, 0)), atol=1e-3)
    assert np.abs(pixels[:, 0][np.transpose(volume, (2, 1, 0)) == 0]).max() < 1e-3


def test_preprocessing_resizes_each_slice_to_the_model_size():
    volume = np.random.default_rng(0).uniform(1, 100, (30, 20, 4)).astype(np.float32)
    frames = medsam2.preprocess(volume, 64)
    assert frames.shape == (4, 3, 64, 64) and frames.dtype == torch.float32


def test_strict_loader_accepts_the_stand_in_and_rejects_broken_files(standin, tmp_path):
    predictor = medsam2.load_predictor(standin, SIZE, CPU)
    assert predictor.image_size == SIZE
    content = torch.load(standin, weights_only=True)
    missing = dict(content["model"])
    dropped = sorted(missing)[0]
    del missing[dropped]
    torch.save({"model": missing, "image_size": SIZE}, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=f"(?s)does not fit sam2.1_hiera_t.*Missing key.*{re.escape(dropped)}"):
        medsam2.load_predictor(tmp_path / "missing.pt", SIZE, CPU)
    torch.save({"state_dict": content["model"]}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match="no 'model' entry"):
        medsam2.load_predictor(tmp_path / "nomodel.pt", SIZE, CPU)


def test_a_checkpoint_runs_only_at_the_size_it_was_trained_at(standin, tmp_path):
    """The weights fit sam2.1_hiera_t at any size: the size is checked, not left to chance."""
    with pytest.raises(ValueError, match=f"trained at {SIZE} px \\(as the file records\\) but medsam2.image_size is 64"):
        medsam2.load_predictor(standin, 64, CPU)
    real_format = tmp_path / "MedSAM2_latest.pt"  # a checkpoint as released: {"model": ...} only
    torch.save({"model": torch.load(standin, weights_only=True)["model"]}, real_format)
    with pytest.raises(ValueError, match="trained at 512 px \\(by medsam2.checkpoint_image_size\\)"):
        medsam2.load_predictor(real_format, SIZE, CPU)
    assert medsam2.load_predictor(real_format, SIZE, CPU, checkpoint_image_size=SIZE).image_size == SIZE


def test_hiera_windows_fit_the_feature_maps_and_leave_the_weights_as_they_are():
    """At 64 px sam2 would pad stage 3's 4 x 4 map to 14 x 14 windows; the windows are clamped to the
    maps instead, MedSAM-2's 512 px keeps sam2's own, and both have the same parameters."""
    assert medsam2.trunk_windows(512) == list(medsam2.HIERA_WINDOWS)
    assert medsam2.trunk_windows(64) == [8, 4, 4, 2]
    small, full = medsam2.build_model(64, CPU), medsam2.build_model(512, CPU)
    # a stage's first block keeps the previous stage's window (before its pooling); 0 = global
    assert [block.window_size for block in small.image_encoder.trunk.blocks] == [8, 8, 4, 4, 4, 0, 4, 0, 4, 0, 4, 2]
    assert [block.window_size for block in full.image_encoder.trunk.blocks] == [8, 8, 4, 4, 14, 0, 14, 0, 14, 0, 14, 7]
    shapes = {name: tensor.shape for name, tensor in full.state_dict().items()}
    assert {name: tensor.shape for name, tensor in small.state_dict().items()} == shapes
    with pytest.raises(ValueError, match="multiple of 32"):
        medsam2.hydra_overrides(48)


def test_propagation_visits_every_slice_once_per_direction(standin):
    predictor = medsam2.load_predictor(standin, SIZE, CPU)
    volume = np.random.default_rng(1).uniform(1, 100, (40, 36, 9)).astype(np.float32)
    frames = medsam2.preprocess(volume, SIZE)
    mask, visits = medsam2.propagate(predictor, frames, 36, 40, key=3, box=(5, 6, 20, 25), device=CPU)
    assert visits["forward"] == [3, 4, 5, 6, 7, 8]
    assert visits["backward"] == [3, 2, 1, 0]
    assert mask.shape == (9, 36, 40) and mask.dtype == bool


def test_the_image_encoder_runs_once_per_frame_in_batches_for_both_directions(standin):
    """Frame features come from batched encoder passes (the warm-up pass of init_state, once per
    direction's state, aside) and are those of a pass on the single frame; the masks do not depend on
    the batch size."""
    predictor = medsam2.load_predictor(standin, SIZE, CPU)
    volume = np.random.default_rng(2).uniform(1, 100, (40, 36, 9)).astype(np.float32)
    frames = medsam2.preprocess(volume, SIZE)
    passes = []
    encoder = predictor.forward_image

    def counted(images):
        passes.append(len(images))
        return encoder(images)

    predictor.forward_image = counted
    mask, _ = medsam2.propagate(predictor, frames, 36, 40, key=4, box=(5, 6, 20, 25), device=CPU, encoder_batch=4)
    assert passes == [1, 1, 4, 4, 1]  # init_state's warm-up on frame 0 per state, then the 9 frames once, by 4
    passes.clear()
    single, _ = medsam2.propagate(predictor, frames, 36, 40, key=4, box=(5, 6, 20, 25), device=CPU, encoder_batch=1)
    assert passes == [1] * 11
    assert np.array_equal(mask, single)
    predictor.forward_image = encoder
    with torch.inference_mode():
        state = {"images": frames, "device": CPU}
        medsam2.cache_frame_features(predictor, state, batch=4)
        assert sorted(state["cached_features"]) == list(range(9))
        image, cached = state["cached_features"][6]
        alone = encoder(frames[6:7])
        assert torch.equal(image, frames[6:7])
        for ours, theirs in zip(cached["backbone_fpn"] + cached["vision_pos_enc"],
                                alone["backbone_fpn"] + alone["vision_pos_enc"]):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_union_of_both_directions():
    a = np.zeros((4, 5), bool)
    a[1, 1] = True
    b = np.zeros((4, 5), bool)
    b[2, 3] = True
    volume = medsam2.unite((3, 4, 5), {"forward": [(1, a), (2, a)], "backward": [(1, b), (0, b)]})
    assert volume[1, 1, 1] and volume[1, 2, 3] and volume[2, 1, 1] and volume[0, 2, 3]
    assert volume.sum() == 4


def test_largest_component_keeps_the_biggest_blob():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:4, 1:4, 1:4] = True  # 27 voxels
    mask[7:9, 7:9, 7:9] = True  # 8 voxels
    mask[5, 5, 5] = True
    kept = medsam2.largest_component(mask)
    assert kept.sum() == 27 and kept[2, 2, 2] and not kept[8, 8, 8]
    assert not medsam2.largest_component(np.zeros((3, 3, 3), bool)).any()


def test_3d_and_slice_metrics_on_known_volumes():
    truth = np.zeros((6, 6, 4), bool)
    truth[1:3, 1:3, 1:3] = True  # 8 voxels on slices 1 and 2
    prediction = np.zeros_like(truth)
    prediction[1:3, 1:3, 1:2] = True  # 4 voxels, all inside
    job = medsam2.BatchJob("brats2019", "legacy", "t1ce", "wt", 0, 1)
    image = nib.Nifti1Image(np.zeros(truth.shape, np.float32), np.diag([2.0, 1.0, 1.0, 1.0]))
    result = medsam2.Segmentation(prediction, truth, image, 1, (1, 1, 2, 2), {})
    row3d, row2d = medsam2.case_metrics("c", job, result, None, "m", 0.5)
    assert row3d["dice"] == pytest.approx(2 * 4 / 12) and row3d["iou"] == pytest.approx(4 / 8)
    assert row3d["hd95"] == pytest.approx(1.0)  # the missing slice is 1 mm away along k
    assert 0 < row3d["nsd"] < 1  # the surface 1 mm away is outside the 0.5 mm tolerance
    assert row3d["key_slice_dice"] == 1.0 and row3d["slices_predicted"] == 1
    assert row3d["volume_true_ml"] == pytest.approx(8 * 2 / 1000)
    assert row3d["volume_pred_ml"] == pytest.approx(4 * 2 / 1000)
    assert (row2d["slice_index"], row2d["dice"]) == (1, 1.0)
    unit = medsam2.Segmentation(prediction, truth, nib.Nifti1Image(image.get_fdata(), np.eye(4)), 1, (1, 1, 2, 2), {})
    _, other = medsam2.case_metrics("c", job, unit, 2, "m", 1.0)
    assert (other["slice_index"], other["dice"], other["nsd"]) == (2, 0.0, 0.0)
    assert other["hd95"] == WORST_HD95_MM  # nothing predicted on slice 2: BraTS's worst value


def real_case_tables(real_data, tmp_path):
    """The real BraTS 2019 case as a one-case test split, and the MedSAM-2 settings of a batch."""
    cases, _ = discover(real_data / "BraTS2019", LEGACY, "brats2019")
    write_tsv(cases, tmp_path / "cases.tsv")
    write_tsv(cases[["case_id"]].assign(split="test"), tmp_path / "splits.tsv")
    return cases, SETTINGS


def test_real_brats2019_case_end_to_end_through_the_stand_in(real_data, standin, tmp_path):
    cases, settings = real_case_tables(real_data, tmp_path)
    medsam2.predict_batch(standin, tmp_path / "cases.tsv", tmp_path / "splits.tsv", None, tmp_path / "out",
                          tmp_path / "out", medsam2.BatchJob("brats2019", "legacy", "t1ce", "wt", 0, 1), settings, "cpu")
    original = nib.load(cases.iloc[0].t1ce)
    predicted = nib.load(tmp_path / "out" / "Brats18_CBICA_AME_1.nii.gz")
    np.testing.assert_array_equal(predicted.affine, original.affine)
    assert predicted.shape == (240, 240, 155) and predicted.get_data_dtype() == np.uint8
    table = read_tsv(tmp_path / "out" / "metrics.tsv")
    assert table.loc[0, "method"] == "medsam2" and 0 <= table.loc[0, "dice"] <= 1
    assert table.loc[0, "volume_true_ml"] > 0
    assert (tmp_path / "out" / "Brats18_CBICA_AME_1.overlay.png").stat().st_size > 0


def test_a_case_without_the_region_gets_an_empty_mask_scored_and_listed_with_the_reason(real_data, standin, tmp_path):
    """No region, no box: the oracle predicts nothing, and the case counts (both empty: Dice 1,
    HD95 0), without a key-slice row (no slice to compare on), listed in skipped.tsv."""
    cases, settings = real_case_tables(real_data, tmp_path)
    seg = tmp_path / "seg.nii.gz"  # the real case with its enhancing tumour (label 4) relabelled as necrosis
    image = nib.load(cases.iloc[0].seg)
    labels = np.asanyarray(image.dataobj).copy()
    labels[labels == 4] = 1
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), seg)
    write_tsv(cases.assign(seg=str(seg)), tmp_path / "cases.tsv")
    medsam2.predict_batch(standin, tmp_path / "cases.tsv", tmp_path / "splits.tsv", None, tmp_path / "out",
                          tmp_path / "out", medsam2.BatchJob("brats2019", "legacy", "t1ce", "et", 0, 1), settings, "cpu")
    skipped = read_tsv(tmp_path / "out" / "skipped.tsv")
    assert skipped.to_dict("records") == [{"case_id": "Brats18_CBICA_AME_1", "reason":
                                           f"region 'et' is empty in {seg}: no box to prompt, an empty mask scored"}]
    (row,) = read_tsv(tmp_path / "out" / "metrics.tsv").to_dict("records")
    assert (row["dice"], row["iou"], row["hd95"], row["nsd"], row["area_true"], row["area_pred"]) == (1, 1, 0, 1, 0, 0)
    assert {str(row[column]) for column in ("key_slice", "key_slice_dice", "prompt_box")} <= {"", "nan"}  # no prompt
    assert not np.asanyarray(nib.load(tmp_path / "out" / "Brats18_CBICA_AME_1.nii.gz").dataobj).any()
    assert read_tsv(tmp_path / "out" / "metrics_2d.tsv").empty
    medsam2.collect_batches([tmp_path / "out"], tmp_path / "all", tmp_path / "m.tsv", tmp_path / "m2.tsv",
                            tmp_path / "skipped.tsv")
    assert read_tsv(tmp_path / "skipped.tsv").case_id.tolist() == ["Brats18_CBICA_AME_1"]


def test_batches_cover_every_case_once_with_its_split():
    cases = pd.DataFrame({"case_id": [f"c{i}" for i in range(7)], "seg": "x"})
    splits = pd.DataFrame({"case_id": [f"c{i}" for i in range(7)], "split": ["train"] * 4 + ["val", "test", "test"]})
    batches = [medsam2.batch_cases(cases, splits, batch, 3) for batch in range(3)]
    assert sorted(sum((b.case_id.tolist() for b in batches), [])) == sorted(cases.case_id)
    assert [len(b) for b in batches] == [3, 2, 2]
    together = pd.concat(batches).set_index("case_id")
    assert together.loc["c5", "split"] == "test" and together.loc["c0", "split"] == "train"
    assert medsam2.batch_cases(cases, splits, 7, 8).empty  # more batches than cases: an empty batch


def test_the_stand_in_loss_trains_the_best_candidate_and_the_object_score():
    from sambrats.medsam2_standin import frame_loss

    target = torch.zeros(16, 16, dtype=torch.bool)
    target[4:10, 5:12] = True
    perfect = torch.where(target, 20.0, -20.0)
    masks = torch.stack([-perfect, perfect, torch.zeros(16, 16)])[None].requires_grad_()
    ious = torch.tensor([[0.0, 1.0, 0.3]], requires_grad=True)
    score = torch.tensor([[5.0]], requires_grad=True)
    outputs = (None, masks, ious, None, None, None, score)
    loss = frame_loss(outputs, target)
    loss.backward()
    assert loss.item() < 0.2  # the perfect candidate counts, with a correct IoU and a confident score
    assert masks.grad[0, 0].abs().sum() == 0 and masks.grad[0, 2].abs().sum() == 0  # only the best is trained
    masks.grad, score.grad = None, None
    empty = frame_loss(outputs, torch.zeros(16, 16, dtype=torch.bool))
    empty.backward()
    assert masks.grad is None and score.grad.item() > 0  # the object is absent: only the score learns
    np.testing.assert_allclose(empty.item(), torch.nn.functional.softplus(torch.tensor(5.0)).item(), rtol=1e-6)


def test_more_batches_than_cases_give_empty_batches_that_collect(standin, tmp_path):
    write_cohort(tmp_path / "raw", LEGACY, 1, (32, 32, 16), seed=2)
    cases, _ = discover(tmp_path / "raw", LEGACY, "brats2019")
    write_tsv(cases, tmp_path / "cases.tsv")
    write_tsv(cases[["case_id"]].assign(split="test"), tmp_path / "splits.tsv")
    batches = [tmp_path / f"batch{batch}" for batch in range(3)]
    for batch, folder in enumerate(batches):
        medsam2.predict_batch(standin, tmp_path / "cases.tsv", tmp_path / "splits.tsv", None, folder, tmp_path / "all",
                              medsam2.BatchJob("brats2019", "legacy", "t1ce", "wt", batch, 3), SETTINGS, "cpu")
    assert read_tsv(batches[1] / "metrics.tsv").empty
    medsam2.collect_batches(batches, tmp_path / "all", tmp_path / "m.tsv", tmp_path / "m2.tsv", tmp_path / "s.tsv")
    for name in ("m.tsv", "m2.tsv"):
        table = read_tsv(tmp_path / name)
        assert table.case_id.tolist() == cases.case_id.tolist() and table.split.tolist() == ["test"]
        assert table.dice.dtype == float
    assert read_tsv(tmp_path / "s.tsv").empty


def test_a_correction_click_re_propagates_from_its_frame_away_from_the_key(standin):
    """Session.click on a frame after the key slice refines that frame and re-propagates forwards
    from it: the backward direction and the frames between the key and the click keep their masks."""
    predictor = medsam2.load_predictor(standin, SIZE, CPU)
    volume = np.random.default_rng(3).uniform(1, 100, (40, 36, 9)).astype(np.float32)
    session = medsam2.Session(predictor, medsam2.preprocess(volume, SIZE), 36, 40, CPU, encoder_batch=4)
    first = session.start(3, box=(5, 6, 20, 25))
    backward, early = dict(session.masks["backward"]), {k: session.masks["forward"][k] for k in (3, 4, 5)}
    passes = []
    encoder = predictor.forward_image
    predictor.forward_image = lambda images: passes.append(len(images)) or encoder(images)
    refined = session.click(6, (30, 30), False)
    predictor.forward_image = encoder
    assert passes == []  # no encoder pass: the frames' features are cached
    assert refined.shape == first.shape == (9, 36, 40) and not np.array_equal(refined[6], first[6])
    assert all(np.array_equal(backward[k], session.masks["backward"][k]) for k in backward)
    assert all(np.array_equal(early[k], session.masks["forward"][k]) for k in early)
    assert session.prompts == {3: ((5, 6, 20, 25), []), 6: (None, [((30, 30), False)])}
    # the clicked frame stays a conditioning frame: re-tracked without its click, the click would be lost
    assert 6 in session.states["forward"]["output_dict_per_obj"][0]["cond_frame_outputs"]
    again = session.start(3, box=(5, 6, 20, 25))  # a new start forgets the clicks
    assert np.array_equal(again, first) and session.prompts == {3: ((5, 6, 20, 25), [])}


def test_points_and_clicks_of_a_volume_reach_sam2_as_its_frames_x_y(standin):
    """The key slice's points and every 3D click are sam2's (x, y) = (i, j) on frame k, the box's
    convention; the protocol's first mask is the box's prediction, one step per click."""
    predictor = medsam2.load_predictor(standin, SIZE, CPU)
    rng = np.random.default_rng(4)
    volume = rng.uniform(1, 100, (40, 36, 9)).astype(np.float32)
    truth = np.zeros(volume.shape, bool)
    truth[8:20, 22:30, 2:7] = True  # i 8..19, j 22..29
    truth[10:14, 24:27, 4] = False
    session = medsam2.open_session(predictor, [volume], SETTINGS, CPU)
    masks, steps = medsam2.prompt_predictions(session, truth, ["point_interior", "gt_box_point"], 2, SETTINGS, "c1")
    key = 2  # the first of the equally large slices
    box, points = masks["gt_box_point"][1:]
    assert box == (8, 22, 19, 29)  # x = i, y = j on the key slice
    x, y = points[0].xy
    assert 8 <= x <= 19 and 22 <= y <= 29 and truth[x, y, key]
    box_mask, _ = medsam2.segment_from_box(predictor, [volume], key, box, SETTINGS, CPU)
    assert np.array_equal(steps[0], box_mask) and len(steps) == 3
    for click in masks[medsam2.CLICK_MODE][2]:
        frame, (i, j) = click.frame_point
        assert click.index == (i, j, frame) and click.positive == truth[click.index]
    assert masks["point_interior"][0].shape == truth.shape and masks["point_interior"][1] is None
