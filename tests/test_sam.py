"""LoRA-SAM: parameter count, box jitter, cached-embedding decoding, resume, prediction tables."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from transformers import SamConfig, SamModel

from sambrats import clicks, sam
from sambrats.clicks import Click
from sambrats.metrics import METRIC_COLUMNS
from sambrats.outputs import read_tsv
from sambrats.slices import SliceSample, case_rng, jitter_box, load_split, tight_box, to_rgb
from sambrats.presets import SAM_STANDINS

from conftest import disc_sample, write_samples

PAPER_TARGETS = ["qkv", "proj", "q_proj", "k_proj", "v_proj", "out_proj", "lin1", "lin2"]
CPU = torch.device("cpu")
TINY = SAM_STANDINS["tiny-sam-256"]


def tiny_model(seed: int = 0) -> SamModel:
    torch.manual_seed(seed)
    return SamModel(sam.tiny_sam_config(**TINY))



def test_one_contrast_fills_the_three_channels_three_contrasts_one_each():
    grey = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    assert np.array_equal(to_rgb(grey), np.repeat(np.array([[0, 128], [255, 64]], np.uint8)[:, :, None], 3, 2))
    three = np.stack([grey, 1 - grey, np.full_like(grey, 0.2)], axis=-1)
    rgb = to_rgb(three)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [0, 255, 51] and rgb[1, 0].tolist() == [255, 0, 51]

def test_lora_on_sam_vit_base_has_the_papers_trainable_parameter_count():
    model = sam.add_lora(SamModel(SamConfig()), r=8, alpha=16, dropout=0.05, target_modules=PAPER_TARGETS)
    trainable, total = sam.parameter_counts(model)
    assert trainable == 1_347_584
    assert total == 93_735_728 + 1_347_584


def test_tiny_preset_has_every_module_name_the_paper_targets():
    names = {name.rsplit(".", 1)[-1] for name, _ in tiny_model().named_modules()}
    assert set(PAPER_TARGETS) <= names


def test_jitter_moves_each_coordinate_within_p_clips_and_keeps_the_box_valid():
    rng = np.random.default_rng(0)
    box = (30, 40, 60, 70)
    moves = np.array([np.subtract(jitter_box(box, 8, (100, 100), rng), box) for _ in range(4000)])
    assert moves.min() == -8 and moves.max() == 8  # uniform integers over the whole [-p, p]
    assert set(np.unique(moves)) == set(range(-8, 9))
    for _ in range(2000):
        x0, y0, x1, y1 = jitter_box((0, 1, 5, 2), 8, (10, 7), rng)  # near the border, thin
        assert 0 <= x0 <= x1 <= 6 and 0 <= y0 <= y1 <= 9
    assert jitter_box(box, 0, (100, 100), rng) == box


def test_eval_jitter_is_seeded_per_case_and_level():
    sample = disc_sample("BraTS-GLI-00001-000", 1)
    first = sam.mode_box("gt_box_jitter10", sample, seed=5)
    assert first == sam.mode_box("gt_box_jitter10", sample, seed=5)
    assert first == jitter_box(sample.box, 10, sample.mask.shape, case_rng(5, sample.case_id, 10))
    others = {sam.mode_box("gt_box_jitter10", sample, seed=s) for s in range(6, 12)}
    assert len(others | {first}) > 1
    assert sam.mode_box("gt_box", sample, 5) == sample.box
    assert sam.mode_box("no_prompt", sample, 5) is None
    assert sam.prompt_modes([0, 10, 20, 10]) == ["gt_box", "gt_box_jitter10", "gt_box_jitter20", "no_prompt"]


def test_cached_embedding_decoding_equals_a_full_forward_per_mode():
    model, processor = tiny_model(1).eval(), sam.sam_processor(TINY["image_size"])
    sample = disc_sample("c", 2, size=60)
    modes = sam.prompt_modes([0, 5, 20])
    cached = sam.predict_modes(model, processor, sample, modes, seed=3, device=CPU)
    assert set(cached) == set(modes)
    with torch.no_grad():
        for mode in modes:
            box = sam.mode_box(mode, sample, 3)
            inputs = sam.prepare(processor, [sample.image], None if box is None else [box])
            full = sam.mask_logits(model, processor, inputs, CPU, with_boxes=box is not None)[0, 0]
            np.testing.assert_array_equal(cached[mode][0], (full > 0).numpy().astype(np.uint8))
            assert cached[mode][1] == box
    # Different boxes really give different masks, so the comparison above is not vacuous.
    assert not np.array_equal(cached["gt_box"][0], cached["no_prompt"][0])


SETTINGS = sam.TrainSettings(epochs=12, batch_size=2, lr=2e-3, weight_decay=0.0, dice_weight=1.0,
                             bce_weight=1.0, box_jitter=3, no_prompt_fraction=0.25, seed=7)


TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from sambrats import sam
    from sambrats.presets import SAM_STANDINS
    from sambrats.slices import load_split
    folder, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    torch.manual_seed(0)
    model = sam.add_lora(SamModel(sam.tiny_sam_config(**SAM_STANDINS["tiny-sam-256"])), 4, 8, 0.0, ["qkv", "lin1"])
    settings = sam.TrainSettings(**SETTINGS)
    sam.train(model, sam.sam_processor(256), load_split(folder, "train"), load_split(folder, "val"),
              settings, workdir, torch.device("cpu"))
    """
).replace("from sambrats import sam", "from sambrats import sam\nfrom transformers import SamModel")


def run_training(folder, workdir) -> subprocess.Popen:
    script = TRAIN_SCRIPT.replace("**SETTINGS", f"**{SETTINGS.__dict__!r}")
    return subprocess.Popen([sys.executable, "-c", script, str(folder), str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_training_resumes_after_a_kill_and_matches_an_uninterrupted_run(tmp_path):
    folder = tmp_path / "slices"
    write_samples(folder, 12)
    reference = run_training(folder, tmp_path / "reference")
    assert reference.wait(timeout=1800) == 0
    reference_history = json.loads((tmp_path / "reference/last/progress.json").read_text())["history"]

    killed = run_training(folder, tmp_path / "work")
    progress_file = tmp_path / "work/last/progress.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if progress_file.exists() and json.loads(progress_file.read_text())["epoch"] >= 3:
            break
        time.sleep(0.02)
    killed.kill()
    killed.wait()
    done = json.loads(progress_file.read_text())["epoch"]
    assert 3 <= done < SETTINGS.epochs, "the run was not interrupted"

    killed_history = json.loads(progress_file.read_text())["history"]

    resumed = run_training(folder, tmp_path / "work")
    assert resumed.wait(timeout=1800) == 0
    history = json.loads(progress_file.read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, SETTINGS.epochs + 1))
    assert history[:done] == killed_history  # kept as they were (timings too): not trained again
    for ours, theirs in zip(history, reference_history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["val_dice"] == pytest.approx(theirs["val_dice"], abs=1e-6)


def test_resume_state_of_other_settings_is_ignored(tmp_path):
    folder = tmp_path / "slices"
    write_samples(folder, 6)
    from sambrats.slices import load_split

    def fit(settings):
        torch.manual_seed(0)
        model = sam.add_lora(tiny_model(), 4, 8, 0.0, ["qkv"])
        return sam.train(model, sam.sam_processor(256), load_split(folder, "train"), load_split(folder, "val"),
                         settings, tmp_path / "work", CPU)

    first = fit(sam.TrainSettings(**{**SETTINGS.__dict__, "epochs": 2}))
    second = fit(sam.TrainSettings(**{**SETTINGS.__dict__, "epochs": 3, "lr": 1e-3}))
    assert first.epoch.tolist() == [1, 2] and second.epoch.tolist() == [1, 2, 3]


def test_lora_training_and_predictions_through_the_saved_formats(tmp_path):
    """Stand-in written with save_pretrained, LoRA trained and saved, both read back by from_pretrained."""
    folder = tmp_path / "slices"
    write_samples(folder, 10)
    base = tmp_path / "base"
    model = tiny_model(3)
    model.save_pretrained(base)
    sam.sam_processor(256).save_pretrained(base)
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": PAPER_TARGETS}
    settings = sam.TrainSettings(**{**SETTINGS.__dict__, "epochs": 2})
    sam.train_lora_sam(base, folder, tmp_path / "adapter", tmp_path / "history.tsv", tmp_path / "curve.png",
                       lora, settings, "cpu")
    assert (tmp_path / "adapter/adapter_model.safetensors").is_file()
    assert not (tmp_path / "adapter.work").exists()
    assert read_tsv(tmp_path / "history.tsv").columns.tolist() == ["epoch", "train_loss", "val_dice", "lr", "seconds"]
    assert (tmp_path / "curve.png").stat().st_size > 0

    sam.write_predictions(base, tmp_path / "adapter", folder, tmp_path / "pred", tmp_path / "metrics.tsv",
                          "brats2024", "wt", [0, 10], seed=1, tolerance_mm=2.0, replicate=7, device_name="cpu")
    table = read_tsv(tmp_path / "metrics.tsv")
    assert table.columns.tolist()[: len(METRIC_COLUMNS)] == METRIC_COLUMNS
    assert sorted(set(zip(table.method, table.prompt))) == [
        ("lora_sam", "gt_box"), ("lora_sam", "gt_box_jitter10"), ("lora_sam", "no_prompt"), ("sam_zeroshot", "gt_box"),
    ]
    assert sorted(table.case_id.unique()) == ["case02", "case03"]  # the test split
    lora_rows = table.method == "lora_sam"
    assert (table.seed[lora_rows].astype(str) == "7").all()  # the training replicate of the adapter
    assert (table.seed[~lora_rows] == "").all()  # the zero-shot base model is not trained: no replicate
    assert ((0 <= table.dice) & (table.dice <= 1)).all()
    for mode in ("gt_box", "gt_box_jitter10", "no_prompt", "zeroshot_gt_box"):
        with np.load(tmp_path / "pred" / mode / "case02.npz") as data:
            assert data["mask"].shape == (48, 48)
    row = table[(table.prompt == "no_prompt")].iloc[0]
    assert row.prompt_box == ""
    with np.load(row.mask_file) as saved:  # the table points at the saved mask
        assert saved["mask"].sum() == row.area_pred


def test_stand_in_is_written_in_the_pretrained_format_and_loads(tmp_path):
    settings = sam.TrainSettings(**{**SETTINGS.__dict__, "epochs": 1, "no_prompt_fraction": 0.0})
    cohort = {"n_cases": 5, "shape": [32, 32, 16], "seed": 9, "modality": "t1n"}
    sam.write_standin("tiny-sam-256", tmp_path / "base", tmp_path / "h.tsv", tmp_path / "c.png", cohort, settings, "cpu")
    assert {"config.json", "model.safetensors", "processor_config.json"} <= {p.name for p in (tmp_path / "base").iterdir()}
    model, processor = sam.load_base(tmp_path / "base", CPU)
    assert model.config.vision_config.image_size == 256
    assert processor.image_processor.pad_size["height"] == 256


def test_stand_in_samples_give_every_object_on_the_key_slice_its_own_box():
    cases = sam.standin_samples(n_cases=6, shape=[64, 64, 24], seed=5, modality="t1n", lesions=3)
    assert len(cases) == 6 and sum(len(case) > 1 for case in cases) >= 3  # lesions on most key slices
    for case in cases:
        tumour, *lesions = case
        assert all(np.array_equal(sample.image, tumour.image) for sample in lesions)  # one slice per case
        for sample in case:
            assert sample.area >= 12 and sample.box == tight_box(sample.mask)
        for lesion in lesions:
            assert not (lesion.mask & tumour.mask).any()  # the look-alikes are not tumour
    assert [s.case_id for s in cases[0]] == [f"standin-000-{j}" for j in range(len(cases[0]))]


def test_stand_in_positional_embedding_has_the_original_sams_scale():
    """transformers draws it with std hidden_size / 2 (48 here); the original SAM with std 1."""
    torch.manual_seed(0)
    embedding = sam.standin_model(TINY).shared_image_embedding.positional_embedding.detach()
    assert 0.7 < float(embedding.std()) < 1.3
    assert float(SamModel(sam.tiny_sam_config(**TINY)).shared_image_embedding.positional_embedding.detach().std()) > 20


def test_loading_a_missing_base_model_says_what_to_do(tmp_path):
    with pytest.raises(OSError, match="point sam.base_model at a local save_pretrained folder"):
        sam.load_base(tmp_path / "nothing-here", CPU)


def test_clicks_reach_sam_as_x_y_points_with_their_labels_beside_the_box():
    """A click at (row 5, column 40) of a 60 px slice is SAM's point x = 40, y = 5, scaled to the
    processor's 256 px like the box; positive clicks are label 1, negative ones 0."""
    processor = sam.sam_processor(TINY["image_size"])
    image = np.zeros((60, 60), np.float32)
    made = [Click((5, 40), True), Click((30, 12), False)]
    inputs = sam.prepare(processor, [image], [(10, 0, 50, 20)], [made])
    scale = 256 / 60
    np.testing.assert_allclose(inputs["input_points"][0, 0].numpy(), [[40 * scale, 5 * scale], [12 * scale, 30 * scale]],
                               rtol=1e-4)
    assert inputs["input_labels"][0, 0].tolist() == [1, 0]
    np.testing.assert_allclose(inputs["input_boxes"][0, 0].numpy(), [10 * scale, 0, 50 * scale, 20 * scale], rtol=1e-4)


def test_click_refinement_clicks_on_the_latest_error_and_feeds_clicks_and_mask_back():
    model, processor = tiny_model(2).eval(), sam.sam_processor(TINY["image_size"])
    sample = disc_sample("c", 3, size=60)
    masks, made = sam.click_refinement(model, processor, sample.image, sample.mask, sample.box, 3, CPU)
    assert len(masks) == 4 and len(made) == 3  # an untrained model leaves errors to click on
    for before, click in zip(masks, made):
        assert bool(sample.mask[click.index]) == click.positive != bool(before[click.index])  # on an error
    with torch.no_grad():  # the clicks and the previous mask change the decode (the loop is not vacuous)
        inputs = sam.prepare(processor, [sample.image], [sample.box])
        embedding = sam.image_embeddings(model, inputs, CPU)
        box_only, previous = sam.decode(model, processor, inputs, CPU, embedding)
        clicked = sam.prepare(processor, [sample.image], [sample.box], [made[:1]])
        with_click = sam.decode(model, processor, clicked, CPU, embedding)[0]
        with_mask = sam.decode(model, processor, clicked, CPU, embedding, previous=previous)[0]
    assert not torch.equal(box_only, with_click) and not torch.equal(with_click, with_mask)
    np.testing.assert_array_equal(masks[0], (box_only[0, 0] > 0).numpy())


def test_point_modes_and_the_click_protocol_through_the_saved_formats(tmp_path):
    """A LoRA adapter trained with point batches, then every point mode and the box + clicks protocol
    on the test slices: the points recorded as x,y (the interior point is the disc's centre), one
    row per protocol step with the click that made it, the AUCs from those steps."""
    folder = tmp_path / "slices"
    write_samples(folder, 10)
    base = tmp_path / "base"
    tiny_model(4).save_pretrained(base)
    sam.sam_processor(256).save_pretrained(base)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["qkv", "lin1"]}
    settings = sam.TrainSettings(**{**SETTINGS.__dict__, "epochs": 1, "point_prompt_fraction": 0.5})
    sam.train_lora_sam(base, folder, tmp_path / "adapter", tmp_path / "history.tsv", tmp_path / "curve.png",
                       lora, settings, "cpu")
    modes = clicks.point_modes([3, 1])
    assert modes == ["point_interior", "points1", "points3", "gt_box_point"]
    sam.write_predictions(base, tmp_path / "adapter", folder, tmp_path / "pred", tmp_path / "metrics.tsv",
                          "brats2024", "wt", [0], seed=1, tolerance_mm=2.0, replicate=7, device_name="cpu",
                          points=modes, n_clicks=3, clicks_path=tmp_path / "clicks.tsv")
    table = read_tsv(tmp_path / "metrics.tsv").query("method == 'lora_sam'").set_index(["prompt", "case_id"])
    assert set(modes + ["gt_box_clicks"]) <= set(table.index.get_level_values("prompt"))
    sample = next(s for s in load_split(folder, "test") if s.case_id == "case02")
    row, column = np.argwhere(sample.mask).mean(axis=0).round().astype(int)  # the disc's centre
    assert table.loc[("point_interior", "case02"), "prompt_points"] == f"{column},{row},+"
    assert table.loc[("gt_box_point", "case02"), "prompt_box"] == ",".join(map(str, sample.box))
    assert len(table.loc[("points3", "case02"), "prompt_points"].split(";")) == 3
    steps = read_tsv(tmp_path / "clicks.tsv")
    assert steps.columns.tolist() == clicks.STEP_COLUMNS and (steps.seed == 7).all()
    case = steps[steps.case_id == "case02"].set_index("step")
    assert case.index.tolist() == [0, 1, 2, 3] and case.click[0] == "" and case.click[1:].str.match(r"^\d+,\d+,[+-]$").all()
    clicked = table.loc[("gt_box_clicks", "case02")]
    assert clicked.dice == pytest.approx(case.dice[3])  # the protocol's row is its last step
    assert float(clicked.dice_auc) == pytest.approx(clicks.interaction_auc(case.dice[1:]))  # text: empty elsewhere
    assert table.loc[("gt_box", "case02"), "dice"] == pytest.approx(case.dice[0])  # step 0 is the GT box's mask


def test_a_point_batch_gives_every_mask_as_many_points_even_a_one_pixel_one():
    """SAM's processor takes the same number of points for every image of a batch: a batch with a
    1-pixel mask is prompted by one point per image (draws of 2 or 3 points once failed there)."""
    model, processor = tiny_model(5), sam.sam_processor(TINY["image_size"])
    small = disc_sample("small", 1, size=60)
    mask = np.zeros_like(small.mask)
    mask[10, 10] = 1
    samples = [disc_sample("big", 2, size=60), SliceSample("small", 0, small.image, mask, (10, 10, 10, 10))] * 8
    settings = sam.TrainSettings(**{**SETTINGS.__dict__, "batch_size": 2, "no_prompt_fraction": 0.0,
                                    "point_prompt_fraction": 1.0})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = sam.train_epoch(model, processor, samples, optimizer, settings, np.random.default_rng(0), CPU, "epoch")
    assert len(losses) == 8 and all(np.isfinite(losses))


def test_training_refines_with_correction_clicks_and_trains_the_image_encoder():
    """A prompted batch's loss adds decodes with correction clicks on the previous prediction (a
    sample predicted without error gets its most interior point); the gradient reaches the image
    encoder (SamModel.get_image_embeddings runs without gradients: not the training path)."""
    sample = disc_sample("c", 3, size=60)
    perfect = (2 * sample.mask.astype(np.float32) - 1)[None]
    made = sam.next_clicks([[], []], torch.from_numpy(np.stack([perfect[0], -np.ones((60, 60), np.float32)])),
                           [sample, sample])
    assert made[0] == [Click(clicks.most_interior(sample.mask), True)]  # no error: the interior point
    assert made[1] == [clicks.correction_click(np.zeros_like(sample.mask), sample.mask)]
    processor = sam.sam_processor(TINY["image_size"])
    batch = [sample, disc_sample("d", 4, size=60)]
    boxes = [s.box for s in batch]
    losses = {}
    for steps in (0, 2):
        model = tiny_model(1)
        settings = sam.TrainSettings(**{**SETTINGS.__dict__, "click_steps": steps})
        loss = sam.prompted_loss(model, processor, batch, "box", boxes, None, settings, CPU)
        loss.backward()
        losses[steps] = loss.item()
        encoder = model.vision_encoder.layers[0].attn.qkv.weight.grad
        assert encoder is not None and encoder.abs().sum() > 0
    assert losses[0] != losses[2]
    pointed = sam.TrainSettings(**{**SETTINGS.__dict__, "point_prompt_fraction": 0.25})
    assert [sam.batch_prompt(draw, pointed) for draw in (0.1, 0.3, 0.6)] == ["none", "points", "box"]
