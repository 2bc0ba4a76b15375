# Config access, wildcard constraints and input functions shared by every rule file.

import functools
import re
from pathlib import Path

from sambrats.brats import get_layout, raw_files, resolve_modality
from sambrats.config import synthetic_root
from sambrats import nnunet
from sambrats.presets import MEDSAM2_STANDINS, SAM_STANDINS
from sambrats.slices import SLICE_SETS
from sambrats.weights import MANIFEST, WEIGHTS, configured_weights
from sambrats.yolo import detector_name

RESULTS = "results"
# The one software environment of every rule (`--software-deployment-method conda`).
SOFTWARE = f"{workflow.basedir}/envs/sambrats.yaml"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
# Of the jobs that are ready, Snakemake starts those of higher priority first (default 0). The
# data every model waits on comes first, then the long trainings that whole chains of jobs wait
# on, so that short jobs fill both cores at the end instead of one training running alone (the
# demo on 2 cores had a YOLO training alone for its last 100 s; see the README's demo section).
PRIORITY_DATA = 2
PRIORITY_TRAINING = 1


# Training replicates: every trained method runs once per seed of `replicates` ({seed}).
REPLICATES = config["replicates"]


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    region="|".join(config["regions"]),
    seed="|".join(str(seed) for seed in REPLICATES),
    configuration="2d|3d_fullres",
    slice_set="|".join(SLICE_SETS),


def get_replicate_seed(wildcards):
    """The training seed of a replicate (its ``{seed}`` wildcard)."""
    return int(wildcards.seed)


def job_threads(usable):
    """A rule's threads: what its job can use, at most `threads` of the config (the demo's 1 runs
    jobs side by side and makes a job's bytes independent of --cores)."""
    return min(usable, config["threads"])


def memory_per_attempt(mem_mb, per_thread=False):
    """mem_mb of a heavy rule: the base (per thread if asked) times the attempt, so a retry asks for more."""
    if per_thread:
        return lambda wildcards, threads, attempt: mem_mb * threads * attempt
    return lambda wildcards, attempt: mem_mb * attempt


def dataset_config(dataset):
    return config["data"][dataset]


def get_dataset_layout(wildcards):
    return dataset_config(wildcards.dataset)["layout"]


def get_region_contrasts(wildcards):
    """The contrasts a region is seen on (`contrasts`): the 2D methods' slices, MedSAM-2's frames."""
    return config["contrasts"][wildcards.region]


def get_raw_root(wildcards):
    """Raw BraTS folder of a dataset: the user's, or the demo cohort the workflow writes."""
    return dataset_config(wildcards.dataset)["root"]


@functools.cache
def raw_dataset_files(root, layout):
    """Every file of every case folder of a user's raw folder, listed once per parse."""
    return raw_files(Path(root), get_layout(layout))


def get_raw_inputs(wildcards):
    """What case discovery reads: the demo cohort folder the workflow writes, or every file of
    the user's case folders, so that an added, removed or replaced raw file reruns discovery.
    """
    settings = dataset_config(wildcards.dataset)
    if settings["root"] == synthetic_root(wildcards.dataset):
        return {"root": settings["root"]}
    return {"case_files": raw_dataset_files(settings["root"], settings["layout"])}


def slices_dir(dataset, region="{region}", slice_set="key_slice"):
    """A slice set of a dataset and region (by default the rule's ``{region}`` wildcard and the study's
    key slices; ``"{slice_set}"``: the rule's wildcard)."""
    return f"{RESULTS}/slices/{dataset}/{region}/{slice_set}"


# What the volume protocol's LoRA-SAM and YOLO train on (a slice set; the study's rows: key_slice).
VOLUME_TRAINING = config["slices"]["volume_training"]


def get_slice_sampling(wildcards):
    """sambrats.slices.VolumeSampling of a slice set (None: one key slice per case)."""
    if wildcards.slice_set == "key_slice":
        return None
    return config["slices"]["volume_sampling"] | {"seed": config["seed"]}


def volume_model(pattern):
    """A trained 2D model's output pattern for the volume protocol: the replicate trained on the
    configured slice set (``slices.volume_training``)."""
    return expand(pattern, slice_set=VOLUME_TRAINING, allow_missing=True)[0]


def sam_base_model():
    """What SamModel.from_pretrained reads: the stand-in folder for a preset, else the config value."""
    name = config["sam"]["base_model"]
    if name in SAM_STANDINS:
        return expand(rules.sam_standin.output.model, preset=name)[0]
    return name


def get_sam_base_input(wildcards):
    """The base model as an input when it is local: a stand-in, a download_weights target, a folder here."""
    path = sam_base_model()
    is_local = (
        config["sam"]["base_model"] in SAM_STANDINS
        or path in WEIGHTS
        or Path(path).exists()
    )
    return {"base": path} if is_local else {}


def get_lora_settings(wildcards):
    """LoRA training settings (sambrats.sam.TrainSettings), seeded by the replicate. Only the key
    slices' adapters get point and click prompts: the volume protocol prompts by boxes alone.
    """
    settings = {**config["sam"]["train"], "seed": get_replicate_seed(wildcards)}
    if wildcards.slice_set != "key_slice":
        settings |= {"point_prompt_fraction": 0.0, "click_steps": 0}
    return settings


def sam_standin_cohort():
    """The SAM stand-in's synthetic cohort (sambrats.sam.standin_samples arguments)."""
    standin = config["sam"]["standin"]
    keys = ("n_cases", "shape", "seed", "modality")
    return {key: standin[key] for key in keys} | {"lesions": config["demo"]["lesions"]}


def standin_settings():
    """The stand-in trains like LoRA-SAM but in full, on its own seed, always prompted."""
    standin = config["sam"]["standin"]
    return config["sam"]["train"] | {
        "epochs": standin["epochs"],
        "batch_size": standin["batch_size"],
        "lr": standin["lr"],
        "seed": standin["seed"],
        "click_steps": standin["click_steps"],
        "no_prompt_fraction": 0.0,
    }


def get_yolo_model_input(wildcards):
    """YOLO weights as a rule input when the model is a .pt file (a .yaml trains from scratch)."""
    model = config["yolo"]["model"]
    return {"model": model} if model.endswith(".pt") else {}


def get_yolo_settings(wildcards):
    """sambrats.yolo.YoloSettings of the config, seeded by the replicate."""
    keys = ("epochs", "imgsz", "batch", "patience", "workers")
    return {key: config["yolo"][key] for key in keys} | {
        "seed": get_replicate_seed(wildcards)
    }


def get_sam_prompt_inputs(wildcards):
    """Extra prompt sources of predict_sam: the YOLO boxes when the automatic pipeline runs."""
    if "yolo_sam" not in config["methods"]:
        return {}
    return {
        "yolo_boxes": expand(rules.predict_yolo_boxes.output.chosen, **wildcards)[0]
    }


# The volume protocol's prompts of LoRA-SAM (sambrats.sam_volumes) and the method each comes with.
VOLUME_PROMPTS = {"box_per_slice": "lora_sam", "yolo_per_slice": "yolo_sam"}
# MedSAM-2 prompted by the detector (sambrats.medsam2.predict_detected), when YOLO is configured.
MEDSAM2_AUTOMATIC = "yolo_key_slice"
# A prompted 3D run of the volume protocol (LoRA-SAM per slice, MedSAM-2 from the detector): masks/,
# prompts.tsv, metrics.tsv; {family} is its folder under results/, VOLUME_FAMILIES its method.
VOLUME_RUN = (
    f"{RESULTS}/{{family}}/{{region}}/{{dataset}}/seed{{seed}}/volumes/{{prompt}}"
)
VOLUME_FAMILIES = {"sam": "lora_sam", "medsam2": "medsam2"}


def volume_prompts():
    """LoRA-SAM's volume prompts of the configured methods."""
    return [
        prompt
        for prompt, method in VOLUME_PROMPTS.items()
        if method in config["methods"]
    ]


def get_volume_prompt_inputs(wildcards):
    """The detector's table of the test volumes for the automatic prompt (same dataset and seed)."""
    if wildcards.prompt != "yolo_per_slice":
        return {}
    detections = volume_model(rules.detect_volumes.output[0])
    return {"detections": expand(detections, **wildcards)[0]}


def nnunet_dataset_name():
    return nnunet.dataset_name(
        config["nnunet"]["dataset_id"], config["nnunet"]["dataset_name"]
    )


# Roots of nnU-Net's own folders (raw/, preprocessed/, model/) and MedSAM-2's outputs.
NNUNET = f"{RESULTS}/nnunet/{{region}}"  # nnU-Net's own root of a region: raw/, preprocessed/, model/
NNUNET_DATASET = nnunet_dataset_name()


def get_nnunet_root(wildcards):
    return expand(NNUNET, region=wildcards.region)[0]


# nnU-Net's own root of the volume protocol per region and dataset; one run per configuration and seed.
NNUNET_VOLUMES = f"{RESULTS}/nnunet_volumes/{{region}}/{{dataset}}"
NNUNET_VOLUMES_RUN = f"{NNUNET_VOLUMES}/{{configuration}}/seed{{seed}}"
NNUNET_VOLUMES_DATASET = nnunet.dataset_name(
    config["nnunet"]["volumes"]["dataset_id"],
    config["nnunet"]["volumes"]["dataset_name"],
)


def get_volume_epochs(wildcards):
    """Epochs of a volume configuration: `nnunet.volumes.epochs`, or `epochs_2d` for 2d if set."""
    volumes = config["nnunet"]["volumes"]
    if wildcards.configuration == "2d" and volumes["epochs_2d"] is not None:
        return volumes["epochs_2d"]
    return volumes["epochs"]


def get_nnunet_volumes_root(wildcards):
    return expand(NNUNET_VOLUMES, region=wildcards.region, dataset=wildcards.dataset)[0]


MEDSAM2 = f"{RESULTS}/medsam2"
MEDSAM2_REGION = f"{MEDSAM2}/{{region}}"
MEDSAM2_PREDICTIONS = f"{MEDSAM2_REGION}/predictions/{{dataset}}"


def get_medsam2_predictions_dir(wildcards):
    """Where medsam2_collect puts a batch's masks (the metrics tables point there)."""
    return expand(
        MEDSAM2_PREDICTIONS, region=wildcards.region, dataset=wildcards.dataset
    )[0]


def medsam2_checkpoint():
    """The MedSAM-2 checkpoint file: the workflow's stand-in for a preset, else the config path."""
    name = config["medsam2"]["checkpoint"]
    if name in MEDSAM2_STANDINS:
        return expand(rules.medsam2_standin.output.checkpoint, preset=name)[0]
    return name


def medsam2_settings():
    """sambrats.medsam2.MedsamSettings of the config."""
    keys = (
        "image_size",
        "checkpoint_image_size",
        "box_jitter",
        "largest_component",
        "offload_video_to_cpu",
        "offload_state_to_cpu",
        "encoder_batch",
        "overlays",
    )
    settings = {key: config["medsam2"][key] for key in keys}
    return settings | {
        "seed": config["seed"],
        "clip_percentiles": config["slices"]["clip_percentiles"],
        "nsd_tolerance_mm": config["metrics"]["nsd_tolerance_mm"],
    }


def get_method_metrics(method):
    """A method's per-case metrics tables (patterns with ``{region}`` and, for a trained method,
    ``{seed}``), as the rules that write them declare them: a method joins the comparison
    through them."""
    if method == "nnunet":
        study = (
            [rules.predict_nnunet.output.metrics]
            if "2d" in config["nnunet"]["configurations"]
            else []
        )
        return study + expand(
            nnunet_volume_metrics(),
            dataset=config["volume_datasets"],
            allow_missing=True,
        )
    if method in ("lora_sam", "yolo_sam"):
        prompts = [
            prompt for prompt, owner in VOLUME_PROMPTS.items() if owner == method
        ]
        return study_2d([rules.predict_sam.output.metrics]) + expand(
            rules.score_volumes.output[0],
            family="sam",
            dataset=config["volume_datasets"],
            prompt=prompts,
            allow_missing=True,
        )
    collect = rules.medsam2_collect.output
    return expand(
        [collect.metrics, collect.metrics_2d, rules.medsam2_prompts.output.metrics]
        + medsam2_automatic_metrics(),
        dataset=config["volume_datasets"],
        allow_missing=True,
    )


def medsam2_automatic_metrics():
    """MedSAM-2's automatic run (its detector trained per replicate), when YOLO is configured
    (patterns with dataset, region, seed)."""
    if "yolo_sam" not in config["methods"]:
        return []
    return expand(
        rules.score_volumes.output[0],
        family="medsam2",
        prompt=MEDSAM2_AUTOMATIC,
        allow_missing=True,
    )


def get_method_targets(method):
    """A method's outputs beyond its metrics tables (patterns with ``{region}``, ``{seed}``)."""
    if method == "yolo_sam":
        return study_2d([rules.evaluate_yolo.output[0]])
    if method == "medsam2":
        return expand(
            rules.medsam2_collect.output.predictions,
            dataset=config["volume_datasets"],
            allow_missing=True,
        )
    return []


def method_metrics(region=None):
    """Per-case metrics tables of the configured methods (every replicate), for one region or all."""
    regions = config["regions"] if region is None else [region]
    patterns = [
        table for method in config["methods"] for table in get_method_metrics(method)
    ]
    return list(dict.fromkeys(expand(patterns, region=regions, seed=REPLICATES)))


def study_2d(patterns):
    """Patterns of a 2D method's outputs on the study protocol's dataset and its key slices
    (``{region}``, ``{seed}`` left)."""
    return expand(
        patterns,
        dataset=config["dataset_2d"],
        slice_set="key_slice",
        allow_missing=True,
    )


def detection_runs():
    """(dataset, slice set, region, seed) of every YOLO replicate: the study's (key slices) and the
    volume protocol's, in the order of the comparison's detection input."""
    sets = [(config["dataset_2d"], "key_slice")] + [
        (dataset, VOLUME_TRAINING) for dataset in config["volume_datasets"]
    ]
    return [
        (dataset, slice_set, region, seed)
        for dataset, slice_set in dict.fromkeys(sets)
        for region in config["regions"]
        for seed in REPLICATES
    ]


def volume_runs():
    """``{folder under results/: (dataset, region)}`` of every 3D run (a method's replicate) of the
    configured datasets and regions: the folders that hold a per-case metrics table of 3D masks.
    """
    runs = {}
    for pattern in volume_metrics_patterns():
        for dataset in config["volume_datasets"]:
            for region in config["regions"]:
                for table in expand(
                    pattern, dataset=dataset, region=region, seed=REPLICATES
                ):
                    runs[Path(table).parent.relative_to(RESULTS).as_posix()] = (
                        dataset,
                        region,
                    )
    return runs


def get_lesionwise_inputs(wildcards):
    """One 3D run's metrics table (its masks), its dataset's case table (the ground truth) and the
    official evaluation's environment."""
    dataset, _ = VOLUME_RUNS[wildcards.run]
    return {
        "metrics": f"{RESULTS}/{wildcards.run}/metrics.tsv",
        "cases": expand(rules.discover_cases.output.cases, dataset=dataset)[0],
        "environment": rules.brats_evaluation_env.output[0],
    }


def lesionwise_tables():
    """The official lesion-wise metrics of every 3D run, when the config asks for them."""
    if not config["brats_evaluation"]["enabled"]:
        return []
    return [f"{RESULTS}/{run}/lesionwise.tsv" for run in VOLUME_RUNS]


def get_comparison_inputs(wildcards):
    inputs = {
        "metrics": method_metrics(),
        "lesionwise": lesionwise_tables(),
        "splits": expand(rules.split_cases.output[0], dataset=config["datasets"]),
    }
    if "yolo_sam" in config["methods"]:
        inputs["detection"] = [
            expand(
                rules.evaluate_yolo.output[0],
                dataset=dataset,
                slice_set=slice_set,
                region=region,
                seed=seed,
            )[0]
            for dataset, slice_set, region, seed in detection_runs()
        ]
    return inputs


def get_figure_inputs(wildcards):
    """One region's metrics (every replicate) and each trained method's own training record of
    that region (its first replicate)."""
    logs = {}
    if {"lora_sam", "yolo_sam"} & set(config["methods"]):
        logs["lora_history"] = rules.train_lora_sam.output.history
    if "yolo_sam" in config["methods"]:
        logs["yolo_results"] = rules.train_yolo.output.results
    if "nnunet" in config["methods"] and "2d" in config["nnunet"]["configurations"]:
        logs["nnunet_history"] = rules.train_nnunet.output.history
    clicks = {}
    if "lora_sam" in config["methods"]:
        clicks["clicks_lora_sam"] = expand(
            study_2d(rules.predict_sam.output.clicks),
            region=wildcards.region,
            seed=REPLICATES,
        )
    if "medsam2" in config["methods"]:
        clicks["clicks_medsam2"] = expand(
            rules.medsam2_prompts.output.clicks,
            region=wildcards.region,
            dataset=config["volume_datasets"],
        )
    return (
        {"metrics": method_metrics(wildcards.region)}
        | {
            name: expand(
                pattern,
                region=wildcards.region,
                seed=REPLICATES[0],
                dataset=config["dataset_2d"],
                slice_set="key_slice",
            )[0]
            for name, pattern in logs.items()
        }
        | clicks
    )


def method_inputs():
    """What each method saw, by method, dataset and region, for the comparison table."""

    def seen(contrasts, dataset, what):
        layout = get_layout(dataset_config(dataset)["layout"])
        return (
            f"{'+'.join(resolve_modality(layout, name) for name in contrasts)} {what}"
        )

    def by_region(datasets, text):
        return {
            dataset: {region: text(dataset, region) for region in config["regions"]}
            for dataset in datasets
        }

    two_d = {
        "nnunet": "slice",
        "sam_zeroshot": "slice, GT box",
        "lora_sam": "slice, prompt as in the row",
    }
    inputs = {
        method: by_region(
            [config["dataset_2d"]],
            lambda dataset, region, what=what: seen(
                config["contrasts"][region], dataset, what
            ),
        )
        for method, what in two_d.items()
    }
    for method, what in (
        ("lora_sam_volume", "slices of the volume, a GT box on each"),
        ("yolo_sam_volume", "slices of the volume, YOLO's box on each"),
        ("medsam2", "volume, one box on the key slice"),
        ("medsam2_prompts", "volume, the row's prompt on the key slice"),
        ("medsam2_automatic", "volume, YOLO's most confident box as the key slice's"),
    ):
        inputs[method] = by_region(
            config["volume_datasets"],
            lambda dataset, region, what=what: seen(
                config["contrasts"][region], dataset, what
            ),
        )
    for method in ("nnunet_2d", "nnunet_3d"):
        inputs[method] = by_region(
            config["volume_datasets"],
            lambda dataset, region: seen(
                config["nnunet"]["volumes"]["channels"], dataset, "volume"
            ),
        )
    return inputs


def method_training():
    """What each trained method's models trained on, by method (or Row.seen), for the comparison table."""
    study, volume = SLICE_SETS["key_slice"], SLICE_SETS[VOLUME_TRAINING]
    return {
        "nnunet": study,
        "sam_zeroshot": "none (zero-shot)",
        "medsam2": "none (zero-shot)",
        "medsam2_prompts": "none (zero-shot)",
        "lora_sam": study,
        "lora_sam_volume": volume,
        "yolo_sam_volume": volume,
        "medsam2_automatic": f"detector: {volume}; MedSAM-2 zero-shot",
        "nnunet_2d": "whole training volumes",
        "nnunet_3d": "whole training volumes",
    }


def standin_notes():
    """What the comparison must say about stand-in models of this config."""
    notes = []
    if config["sam"]["base_model"] in SAM_STANDINS and {"lora_sam", "yolo_sam"} & set(
        config["methods"]
    ):
        notes.append(
            f"the base SAM is the stand-in {config['sam']['base_model']} (a tiny SAM trained on a separate "
            "synthetic cohort), not facebook/sam-vit-base: these are not the study's numbers."
        )
    if (
        config["medsam2"]["checkpoint"] in MEDSAM2_STANDINS
        and "medsam2" in config["methods"]
    ):
        notes.append(
            f"MedSAM-2 is the stand-in {config['medsam2']['checkpoint']}: sam2.1_hiera_t trained for a few "
            "minutes on a separate synthetic cohort (own seed), not MedSAM2_latest.pt: these are not "
            "the study's numbers."
        )
    return notes


def all_targets():
    """Every output the workflow produces for the configured datasets and methods."""
    targets = (
        expand(
            slices_dir("{dataset}"),
            dataset=config["datasets"],
            region=config["regions"],
        )
        + method_metrics()
    )
    for method in config["methods"]:
        targets += expand(
            get_method_targets(method), region=config["regions"], seed=REPLICATES
        )
    if method_metrics():
        targets += [rules.compare_methods.output.md, rules.provenance.output[0]]
    if volume_metrics_patterns():
        targets += expand(
            rules.viewer.output[0],
            dataset=config["volume_datasets"],
            region=config["regions"],
        )
    return list(dict.fromkeys(targets))


def nnunet_3d_configured():
    return (
        "nnunet" in config["methods"]
        and "3d_fullres" in config["nnunet"]["configurations"]
    )


def nnunet_volume_metrics():
    """nnU-Net's volume-protocol metrics tables, one per configured configuration (patterns with
    dataset, region, seed)."""
    if "nnunet" not in config["methods"]:
        return []
    return expand(
        rules.predict_nnunet_volumes.output.metrics,
        configuration=config["nnunet"]["configurations"],
        allow_missing=True,
    )


def volume_metrics_patterns():
    """The per-case metrics tables of the volume protocol's methods (patterns with dataset, region,
    seed)."""
    patterns = nnunet_volume_metrics() + expand(
        rules.score_volumes.output[0],
        family="sam",
        prompt=volume_prompts(),
        allow_missing=True,
    )
    if "medsam2" in config["methods"]:
        patterns += [rules.medsam2_collect.output.metrics] + medsam2_automatic_metrics()
    return patterns


def get_viewer_inputs(wildcards):
    """One dataset's and region's 3D metrics tables (every replicate), its cases and NiiVue."""
    metrics = expand(
        volume_metrics_patterns(),
        dataset=wildcards.dataset,
        region=wildcards.region,
        seed=REPLICATES,
    )
    return {
        "metrics": list(dict.fromkeys(metrics)),
        "cases": expand(rules.discover_cases.output.cases, dataset=wildcards.dataset)[
            0
        ],
        "library": rules.viewer_library.output[0],
    }


def viewer_baseline():
    """The 3D rows' baseline, else MedSAM-2 (the viewer's best, median and worst cases are its)."""
    return "nnunet_3d" if nnunet_3d_configured() else "medsam2"


def get_viewer_modalities(wildcards):
    """The MRI volumes the 3D methods saw on a dataset and region: MedSAM-2's, then nnU-Net 3D's
    channels (each once, in the dataset's names)."""
    names = []
    if "medsam2" in config["methods"]:
        names += config["contrasts"][wildcards.region]
    if nnunet_3d_configured():
        names += config["nnunet"]["volumes"]["channels"]
    layout = get_layout(get_dataset_layout(wildcards))
    return list(dict.fromkeys(resolve_modality(layout, name) for name in names))


def weight_outputs():
    """The config's downloadable weights as outputs, kept in place when the rule runs to record checksums."""
    return {
        Path(weight.path).stem.replace("-", "_"): update(
            directory(weight.path) if weight.folder else weight.path
        )
        for weight in configured_weights(config)
    }


def get_weight_checksums(wildcards):
    """The checksum manifest, for provenance, when the config uses downloadable weights."""
    return {"weights": MANIFEST} if configured_weights(config) else {}
