"""nnU-Net v2 on exactly the study's split: the 2D baseline on the slice dataset (study protocol) and
``2d`` and ``3d_fullres`` trained on whole training volumes, predicting whole test volumes (volume
protocol).

Every nnU-Net step runs in its own process with ``nnUNet_raw``, ``nnUNet_preprocessed`` and
``nnUNet_results`` pointing at folders under one root (``results/nnunet/...``), never the user's
global ones: planning, preprocessing and prediction through nnunetv2's own commands, training
through nnunetv2's trainer with the configured epochs and iterations (``sambrats.nnunet:main`` under ``python -m sambrats.processes``).

Slices are stored as NIfTI volumes of shape H x W x 1 (row = j, column = i as in ``slices``) with
1 mm spacing; volumes are the raw images themselves (linked) with the region's mask as label. Fold 0
of ``splits_final.json`` is our train / val split, our test cases are ``imagesTs``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .brats import get_layout, load_labels, region_mask, resolve_modality, save_mask
from .metrics import metrics_row, metrics_table
from .scoring import score_volume_masks
from .outputs import read_tsv, staged_directory, write_tsv
from .processes import guarded_command, run_logged
from .seeding import seed_everything
from .slices import load_sample, slice_image

log = logging.getLogger(__name__)

CONFIGURATION = "2d"
VOLUMES = "3d_fullres"
# The volume protocol's rows of each configuration: (method, prompt) of its metrics table.
VOLUME_ROWS = {VOLUMES: ("nnunet_3d", "3d"), CONFIGURATION: ("nnunet_2d", "2d")}
TRAINER = "nnUNetTrainer"
PLANS = "nnUNetPlans"


def dataset_name(dataset_id: int, name: str) -> str:
    return f"Dataset{dataset_id:03d}_{name}"


def raw_folder(root, dataset: str) -> str:
    """nnU-Net's raw dataset folder below our nnU-Net ``root``."""
    return f"{root}/raw/{dataset}"


def preprocessed_folder(root, dataset: str) -> str:
    return f"{root}/preprocessed/{dataset}"


def models_folder(root, seed) -> str:
    """nnU-Net's results folder of the training replicate ``seed`` (raw and preprocessed data are
    shared by the replicates)."""
    return f"{root}/model/seed{seed}"


def fold_folder(root, dataset: str, seed, configuration: str = CONFIGURATION) -> str:
    """Where nnU-Net's trainer writes fold 0 of ``configuration`` for the replicate ``seed``."""
    return f"{models_folder(root, seed)}/{dataset}/{TRAINER}__{PLANS}__{configuration}/fold_0"


def checkpoint_path(root, dataset: str, seed, configuration: str = CONFIGURATION) -> str:
    return f"{fold_folder(root, dataset, seed, configuration)}/checkpoint_final.pth"


def environment(root, processes: int = 2, seed=None) -> dict[str, str]:
    """The process environment of an nnU-Net step: private folders below ``root``, the models of
    the replicate ``seed`` (planning and preprocessing need none)."""
    root = Path(root).resolve()
    return {
        **os.environ,
        "nnUNet_raw": str(root / "raw"),
        "nnUNet_preprocessed": str(root / "preprocessed"),
        "nnUNet_results": str(root / "model" if seed is None else Path(models_folder(root, seed))),
        "nnUNet_n_proc_DA": str(processes),
        "nnUNet_compile": "false",
    }


def to_nifti(image: np.ndarray, path: Path, dtype) -> None:
    """A 2D array as an H x W x 1 NIfTI with 1 mm spacing."""
    nib.save(nib.Nifti1Image(np.asarray(image, dtype=dtype)[:, :, None], np.eye(4)), path)


def from_nifti(path: Path) -> np.ndarray:
    """The 2D array of an H x W x 1 NIfTI."""
    return np.asanyarray(nib.load(path).dataobj)[:, :, 0]


def write_raw_dataset(slices_dir, cases_path, out_dir, layout_name: str, channels: list[str],
                      percentiles) -> None:
    """imagesTr / labelsTr (train + val), imagesTs (test) and dataset.json of one raw dataset.

    Channel images are the case's slice of each modality, normalised like the slice dataset.
    """
    slices_dir = Path(slices_dir)
    layout = get_layout(layout_name)
    names = [resolve_modality(layout, channel) for channel in channels]
    index = read_tsv(slices_dir / "index.tsv")
    cases = read_tsv(cases_path).set_index("case_id")
    with staged_directory(out_dir) as folder:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (folder / sub).mkdir()
        for row in index.itertuples():
            sample = load_sample(slices_dir, row.case_id)
            images = "imagesTs" if row.split == "test" else "imagesTr"
            for number, name in enumerate(names):
                image = slice_image(cases.loc[row.case_id, name], row.slice_index, percentiles)
                to_nifti(image, folder / images / f"{row.case_id}_{number:04d}.nii.gz", np.float32)
            if row.split != "test":
                to_nifti(sample.mask, folder / "labelsTr" / f"{row.case_id}.nii.gz", np.uint8)
        description = {
            "channel_names": {str(number): name for number, name in enumerate(names)},
            "labels": {"background": 0, "tumour": 1},
            "numTraining": int((index.split != "test").sum()),
            "file_ending": ".nii.gz",
            "name": Path(out_dir).name,
            "description": "Largest-tumour-area axial slices (sambrats slice dataset)",
        }
        (folder / "dataset.json").write_text(json.dumps(description, indent=2))


def write_raw_volumes(cases_path, split_table, out_dir, layout_name: str, channels: list[str],
                      region: str) -> None:
    """The volumes of every case of the split table as a raw dataset: every channel a link to the
    raw image (nnU-Net normalises it itself), the label the region's mask with the seg's affine and
    header (empty for a case without the region: nnU-Net learns that a volume can hold none); train
    and val cases in imagesTr, test cases in imagesTs."""
    layout = get_layout(layout_name)
    names = [resolve_modality(layout, channel) for channel in channels]
    index = read_tsv(split_table)
    cases = read_tsv(cases_path).set_index("case_id")
    with staged_directory(out_dir) as folder:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (folder / sub).mkdir()
        for row in index.itertuples():
            images = "imagesTs" if row.split == "test" else "imagesTr"
            for number, name in enumerate(names):
                (folder / images / f"{row.case_id}_{number:04d}.nii.gz").symlink_to(
                    Path(cases.loc[row.case_id, name]).resolve())
            if row.split != "test":
                write_region_label(cases.loc[row.case_id, "seg"], layout, region,
                                   folder / "labelsTr" / f"{row.case_id}.nii.gz")
        description = {
            "channel_names": {str(number): name for number, name in enumerate(names)},
            "labels": {"background": 0, region: 1},
            "numTraining": int((index.split != "test").sum()),
            "file_ending": ".nii.gz",
            "name": Path(out_dir).name,
            "description": f"BraTS volumes, region {region} (sambrats)",
        }
        (folder / "dataset.json").write_text(json.dumps(description, indent=2))


def write_region_label(seg_path, layout, region: str, out_path) -> None:
    """The region's mask of a seg as uint8 NIfTI with the seg's affine and header."""
    image, seg = load_labels(Path(seg_path), layout)
    save_mask(region_mask(seg, layout, region), image, out_path)


def plan_and_preprocess(root, dataset_id: int, split_table, processes: int = 2,
                        configurations=(CONFIGURATION,), verify_integrity: bool = True,
                        base_features: int | None = None, target_spacing_mm: float | None = None,
                        batch_size_2d: int | None = None) -> None:
    """nnU-Net's fingerprint (``fingerprint``), plan and preprocessing of ``configurations`` with
    ``processes`` workers for both the fingerprint and the preprocessing (nnU-Net's own default
    spawns 8 for the fingerprint), its dataset integrity check if ``verify_integrity``; fold 0 = our split (the
    ``split_table``: the slice index of a slice dataset, the split of a volume dataset). Given, the
    plan changes that train on a CPU: the planned networks narrowed to ``base_features`` in their
    first stage; 3d_fullres planned at an isotropic ``target_spacing_mm`` (nnU-Net's own
    ``-overwrite_target_spacing``: it resamples for training and back for prediction); 2d's batch
    ``batch_size_2d`` slices instead of the plan's (sized for a GPU)."""
    env = environment(root, processes)
    check = ["--verify_dataset_integrity"] if verify_integrity else []
    spacing = [] if target_spacing_mm is None else ["-overwrite_target_spacing", *[str(target_spacing_mm)] * 3]
    run_logged(guarded_command("sambrats.nnunet:main", "fingerprint", str(dataset_id), str(processes), *check), env)
    run_logged(guarded_command("nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *configurations,
                               "-np", str(processes), *spacing), env)  # without --clean: the fingerprint above
    preprocessed = Path(env["nnUNet_preprocessed"])
    folder = next(preprocessed.glob(f"Dataset{dataset_id:03d}_*"))
    write_split_file(split_table, folder / "splits_final.json")
    if base_features is not None:
        for configuration in configurations:
            narrow_network(folder / f"{PLANS}.json", configuration, base_features)
    if batch_size_2d is not None and CONFIGURATION in configurations:
        set_batch_size(folder / f"{PLANS}.json", CONFIGURATION, batch_size_2d)


FINGERPRINT_FOREGROUND_VOXELS = 10**6  # nnU-Net samples 10**8 (per channel, over all cases)


def fingerprint(dataset_id: int, processes: int, verify_integrity: bool) -> None:
    """nnU-Net's dataset fingerprint (its integrity check first if ``verify_integrity``) from
    ``FINGERPRINT_FOREGROUND_VOXELS`` foreground intensities per channel, drawn with replacement
    over the cases as nnU-Net draws its 10**8: those statistics serve its CT normalisation only
    (MRI channels are z-scored per image), and 10**8 of them cost about 40 s per dataset however
    small (drawn, sent between processes, then sorted for percentiles); shapes and spacings,
    which the plans come from, are every case's as nnU-Net computes them."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    class SampledFingerprint(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = FINGERPRINT_FOREGROUND_VOXELS

    extract_fingerprint_dataset(dataset_id, SampledFingerprint, processes, check_dataset_integrity=verify_integrity,
                                clean=True, verbose=False, show_progress_bar=False)


def narrow_network(plans_path, configuration: str, base_features: int) -> None:
    """Scale the features of every stage of ``configuration``'s planned network so that its first
    stage has ``base_features`` (nnU-Net plans 32): the same depth, kernels and patch, a narrower
    network (the demo's, trained on a CPU). Preprocessing does not depend on it."""
    plans = json.loads(Path(plans_path).read_text())
    arguments = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
    planned = arguments["features_per_stage"]
    arguments["features_per_stage"] = [max(1, features * base_features // planned[0]) for features in planned]
    log.info("%s: features per stage %s instead of nnU-Net's %s", configuration, arguments["features_per_stage"], planned)
    Path(plans_path).write_text(json.dumps(plans, indent=4))


def set_batch_size(plans_path, configuration: str, batch_size: int) -> None:
    """``configuration``'s training batch in the plans (preprocessing does not depend on it)."""
    plans = json.loads(Path(plans_path).read_text())
    planned = plans["configurations"][configuration]["batch_size"]
    plans["configurations"][configuration]["batch_size"] = batch_size
    log.info("%s: batch of %d instead of nnU-Net's %d", configuration, batch_size, planned)
    Path(plans_path).write_text(json.dumps(plans, indent=4))


def write_split_file(split_table, out_path) -> None:
    """splits_final.json with one fold: our train cases train, our val cases validate; read from
    the table the raw dataset was written from (a slice dataset's index holds only the cases with
    a slice of the region)."""
    split = read_tsv(split_table)
    fold = {name: sorted(split.case_id[split.split == name]) for name in ("train", "val")}
    Path(out_path).write_text(json.dumps([fold], indent=2))


def device_type(device_name: str) -> str:
    """nnU-Net's device argument (cpu, cuda) for the config's device (``auto`` resolved)."""
    from .devices import resolve_device  # torch only in jobs: the Snakefile imports this module

    return resolve_device(device_name).type


def train(root, dataset: str, dataset_id: int, epochs: int, iterations: int, val_iterations: int,
          device_name: str, seed: int, history_path, processes: int = 2, configuration: str = CONFIGURATION) -> None:
    """Train fold 0 with nnU-Net's trainer in a guarded child process (it writes ``fold_folder``
    of the replicate ``seed``, which seeds the training), then its curves from nnU-Net's logs to
    ``history_path``. ``processes``: augmentation workers, each seeded (the same number gives the
    same weights)."""
    run_logged(guarded_command("sambrats.nnunet:main", "train", str(dataset_id), str(epochs), str(iterations),
                               str(val_iterations), device_type(device_name), str(seed), configuration),
               environment(root, processes, seed))
    logs = sorted(Path(fold_folder(root, dataset, seed, configuration)).glob("training_log_*.txt"))
    write_tsv(training_history(logs), history_path)


def training_history(log_files) -> pd.DataFrame:
    """Epoch, train loss, validation loss and pseudo Dice from nnU-Net training logs (a resumed
    training has several; a later log's complete epoch replaces an earlier one)."""
    epochs = {}
    for log_file in sorted(log_files):
        text = Path(log_file).read_text()
        for match in re.finditer(r": Epoch (\d+)\s*\n(.*?)(?=: Epoch \d+\s*\n|\Z)", text, re.S):
            block = match.group(2)
            found = [re.search(pattern, block) for pattern in (
                r"train_loss (-?[\d.]+)", r"val_loss (-?[\d.]+)", r"Pseudo dice \[(?:np\.float32\()?([\d.]+)")]
            if all(found):
                epochs[int(match.group(1))] = [float(m.group(1)) for m in found]
    table = pd.DataFrame.from_dict(epochs, orient="index", columns=["train_loss", "val_loss", "pseudo_dice"])
    return table.sort_index().rename_axis("epoch").reset_index()


class WorkerLoader:
    """An nnU-Net data loader as one augmentation worker runs it: one torch thread (a forked
    OpenMP pool hangs) and torch seeded per worker; numpy is seeded by batchgenerators."""

    def __init__(self, loader, seed: int):
        self.loader = loader
        self.seed = seed

    def set_thread_id(self, thread_id: int) -> None:
        """Called first in each worker process."""
        import torch

        torch.set_num_threads(1)
        torch.manual_seed(self.seed + thread_id)
        self.loader.set_thread_id(thread_id)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.loader)


def seeded_loaders(trainer, seed: int, workers: int) -> None:
    """Make the trainer's data loading reproducible: nnU-Net builds its loaders in this process
    (sampling and augmentation seeded with everything else), and with ``workers`` > 0 they run in
    batchgenerators' ordered MultiThreadedAugmenter with one seed per worker instead of nnU-Net's
    unseeded NonDetMultiThreadedAugmenter, whose batch order depends on which worker is first."""
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter

    build = trainer.get_dataloaders

    def get_dataloaders():
        os.environ["nnUNet_n_proc_DA"] = "0"  # nnU-Net's single-process loaders, primed here
        loaders = build()
        if workers == 0:
            return loaders
        return tuple(
            MultiThreadedAugmenter(WorkerLoader(loader.data_loader, seed + offset), loader.transform, n,
                                   num_cached_per_queue=2, seeds=[seed + offset + i for i in range(n)],
                                   pin_memory=trainer.device.type == "cuda")
            for loader, n, offset in zip(loaders, (workers, max(1, workers // 2)), (1000, 2000))
        )

    trainer.get_dataloaders = get_dataloaders


def progress_plot_after_the_last_epoch(trainer) -> None:
    """nnU-Net redraws its ``progress.png`` (three panels of 3,000 x 5,400 px) after every epoch,
    about a second each on a CPU; draw it once, after the last epoch (a resumed training's too)."""
    plot = trainer.logger.plot_progress_png

    def plot_after_the_last_epoch(output_folder) -> None:
        if trainer.current_epoch + 1 >= trainer.num_epochs:
            plot(output_folder)

    trainer.logger.plot_progress_png = plot_after_the_last_epoch


def _train_in_this_process(dataset_id: int, epochs: int, iterations: int, val_iterations: int,
                           device_name: str, seed: int, configuration: str) -> None:
    """Runs inside the child process whose environment names the nnU-Net folders."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    seed_everything(seed)  # before the network is built: its initial weights come from torch's generator
    trainer = get_trainer_from_args(str(dataset_id), configuration, 0, TRAINER, PLANS,
                                    device=torch.device(device_name))
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = val_iterations
    trainer.save_every = 1  # checkpoint_latest after every epoch, so a rerun continues from it
    seeded_loaders(trainer, seed, get_allowed_n_proc_DA())
    progress_plot_after_the_last_epoch(trainer)
    keep_only_an_interrupted_training(Path(trainer.output_folder), trainer.plans_manager.plans)
    maybe_load_checkpoint(trainer, continue_training=True, validation_only=False)
    trainer.run_training()


def keep_only_an_interrupted_training(fold: Path, plans: dict) -> None:
    """Leave ``fold`` to nnU-Net's resume only where it holds an interrupted training of these
    ``plans`` (its ``checkpoint_latest.pth``). Anything else there is an earlier training that
    Snakemake reruns (it removed ``checkpoint_final.pth``; nnU-Net would continue from its
    ``checkpoint_best.pth``), one of other plans, or one killed while nnU-Net wrote its checkpoint (a
    job's time limit: torch's zip archive cut short, no central directory): removed, so the training
    starts afresh."""
    import torch

    latest = fold / "checkpoint_latest.pth"
    if latest.is_file() and not zipfile.is_zipfile(latest):
        log.warning("%s was cut short while it was written (the training was killed then)", latest)
    elif latest.is_file():
        nnunet_globals = [np._core.multiarray.scalar, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]
        with torch.serialization.safe_globals(nnunet_globals):
            saved = torch.load(latest, map_location="cpu", weights_only=True)
        if saved["init_args"]["plans"] == plans:
            log.info("continuing the interrupted training in %s", fold)
            return
        log.info("%s: the interrupted training had other plans", latest)
    if fold.is_dir() and any(fold.iterdir()):  # the trainer has made it; empty on a first training
        log.info("starting afresh: removing the earlier training in %s", fold)
        shutil.rmtree(fold)
        fold.mkdir(parents=True)  # the trainer writes its log there


def predict(root, dataset_id: int, raw_dir, out_dir, device_name: str, seed, processes: int = 2,
            configuration: str = CONFIGURATION, mirroring: bool = True) -> None:
    """nnU-Net's predictor on imagesTs with the final fold-0 checkpoint of ``configuration`` of the
    replicate ``seed`` (with nnU-Net's test-time mirroring unless ``mirroring`` is false); one
    process: nnU-Net's sequential prediction, no worker processes to spawn."""
    options = [] if mirroring else ["--disable_tta"]
    workers = str(processes if processes > 1 else 0)
    run_logged(guarded_command("nnUNetv2_predict", *options, "-i", str(Path(raw_dir) / "imagesTs"), "-o", str(out_dir),
                               "-d", str(dataset_id), "-c", configuration, "-f", "0", "-chk",
                               "checkpoint_final.pth", "-device", device_type(device_name), "-npp", workers,
                               "-nps", workers), environment(root, processes, seed))


def write_predictions(root, dataset_id: int, raw_dir, slices_dir, out_dir, metrics_path, dataset: str,
                      region: str, device_name: str, tolerance_mm: float, seed, processes: int = 2) -> None:
    """Masks of the test slices (``{case}.npz``) and the shared per-case metrics table, by the
    model of the replicate ``seed``."""
    index = read_tsv(Path(slices_dir) / "index.tsv")
    rows = []
    with staged_directory(out_dir) as folder:
        predict(root, dataset_id, raw_dir, folder / "nifti", device_name, seed, processes)
        for case_id in index.case_id[index.split == "test"]:
            mask = (from_nifti(folder / "nifti" / f"{case_id}.nii.gz") > 0).astype(np.uint8)
            np.savez_compressed(folder / f"{case_id}.npz", mask=mask)
            truth = load_sample(slices_dir, case_id)
            rows.append(metrics_row(case_id, dataset, region, "nnunet", "", mask, truth.mask, Path(out_dir) / f"{case_id}.npz",
                                    truth.spacing, tolerance_mm, seed=seed))
    table = metrics_table(rows)
    write_tsv(table, metrics_path)
    log.info("nnU-Net: Dice %.4f, IoU %.4f (n=%d)", table.dice.mean(), table.iou.mean(), len(table))


def write_volume_predictions(root, dataset_id: int, raw_dir, cases_path, out_dir, metrics_path, dataset: str,
                             layout_name: str, region: str, configuration: str, device_name: str,
                             tolerance_mm: float, seed, mirroring: bool = True, processes: int = 2) -> None:
    """Masks of the test volumes by ``configuration`` (trained on volumes) as NIfTI over the input's
    affine and header, and the shared per-case metrics table (3D, in mm; method and prompt of
    ``VOLUME_ROWS``, ``split`` test), by the model of the replicate ``seed``."""
    method, prompt = VOLUME_ROWS[configuration]
    case_ids = sorted(p.name.removesuffix("_0000.nii.gz") for p in Path(raw_dir, "imagesTs").glob("*_0000.nii.gz"))
    with staged_directory(out_dir) as folder:
        predict(root, dataset_id, raw_dir, folder / "nifti", device_name, seed, processes, configuration, mirroring)
        for case_id in case_ids:
            image = nib.load(Path(raw_dir, "imagesTs", f"{case_id}_0000.nii.gz"))
            prediction = np.asanyarray(nib.load(folder / "nifti" / f"{case_id}.nii.gz").dataobj) > 0
            save_mask(prediction, image, folder / f"{case_id}.nii.gz")
        shutil.rmtree(folder / "nifti")
        table = score_volume_masks(folder, case_ids, cases_path, dataset, layout_name, region, method, prompt,
                                   tolerance_mm, seed, published_dir=out_dir)
    write_tsv(table, metrics_path)
    log.info("nnU-Net %s on %s volumes: Dice %.4f, IoU %.4f (n=%d)", configuration, dataset, table.dice.mean(),
             table.iou.mean(), len(table))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="nnU-Net steps in a guarded child process (run by sambrats.nnunet)")
    steps = parser.add_subparsers(dest="step", required=True)
    fingerprint_step = steps.add_parser("fingerprint", help="the dataset fingerprint (see fingerprint)")
    fingerprint_step.add_argument("dataset_id", type=int)
    fingerprint_step.add_argument("processes", type=int)
    fingerprint_step.add_argument("--verify_dataset_integrity", action="store_true")
    train_step = steps.add_parser("train", help="train fold 0 (see train)")
    train_step.add_argument("dataset_id", type=int)
    train_step.add_argument("epochs", type=int)
    train_step.add_argument("iterations", type=int)
    train_step.add_argument("val_iterations", type=int)
    train_step.add_argument("device")
    train_step.add_argument("seed", type=int)
    train_step.add_argument("configuration", choices=[CONFIGURATION, VOLUMES])
    args = parser.parse_args(argv)
    if args.step == "fingerprint":
        fingerprint(args.dataset_id, args.processes, args.verify_dataset_integrity)
    else:
        _train_in_this_process(args.dataset_id, args.epochs, args.iterations, args.val_iterations, args.device,
                               args.seed, args.configuration)

