# Config access, wildcard constraints and input functions shared by every rule file.

from pathlib import Path

from sambrats.config import synthetic_root
from sambrats.nnunet import dataset_name
from sambrats.sam import STANDIN_PRESETS

RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"


wildcard_constraints:
    dataset="|".join(config["datasets"]),


def dataset_config(dataset):
    return config["data"][dataset]


def raw_root(wildcards):
    """Raw BraTS folder of a dataset: the user's, or the demo cohort the workflow writes."""
    return dataset_config(wildcards.dataset)["root"]


def slices_dir(dataset):
    return f"{RESULTS}/slices/{dataset}"


def sam_base_model():
    """What SamModel.from_pretrained reads: the stand-in folder for a preset, else the config value."""
    name = config["sam"]["base_model"]
    return f"{RESULTS}/sam/base/{name}" if name in STANDIN_PRESETS else name


def sam_base_input(wildcards):
    """The base model as a rule input when it is a file of this machine (not a hub id)."""
    path = sam_base_model()
    is_local = config["sam"]["base_model"] in STANDIN_PRESETS or Path(path).exists()
    return {"base": path} if is_local else {}


def lora_settings():
    """LoRA training settings (sambrats.sam.TrainSettings), seeded by the master seed."""
    return {**config["sam"]["train"], "seed": config["seed"]}


def standin_settings():
    """The stand-in trains like LoRA-SAM but in full, on its own seed, always prompted."""
    standin = config["sam"]["standin"]
    return lora_settings() | {
        "epochs": standin["epochs"],
        "batch_size": standin["batch_size"],
        "lr": standin["lr"],
        "seed": standin["seed"],
        "no_prompt_fraction": 0.0,
    }


def yolo_model_input(wildcards):
    """YOLO weights as a rule input when the model is a .pt file (a .yaml trains from scratch)."""
    model = config["yolo"]["model"]
    return {"model": model} if model.endswith(".pt") else {}


def yolo_settings():
    keys = ("epochs", "imgsz", "batch", "patience", "workers")
    return {key: config["yolo"][key] for key in keys} | {"seed": config["seed"]}


def sam_prompt_inputs(wildcards):
    """Extra prompt sources of predict_sam: the YOLO boxes when the automatic pipeline runs."""
    return {"yolo_boxes": f"{RESULTS}/yolo/boxes.tsv"} if "yolo_sam" in config["methods"] else {}


def nnunet_dataset_name():
    return dataset_name(config["nnunet"]["dataset_id"], config["nnunet"]["dataset_name"])


def nnunet_channels():
    """nnU-Net input channels: the configured ones, else the slice dataset's modality."""
    return config["nnunet"]["channels"] or [dataset_config(config["dataset_2d"])["modality"]]


# Targets of each method; the last one is its per-case metrics table.
METHOD_TARGETS = {
    "nnunet": [f"{RESULTS}/nnunet/metrics.tsv"],
    "lora_sam": [f"{RESULTS}/sam/metrics.tsv"],
    "yolo_sam": [f"{RESULTS}/yolo/metrics.tsv", f"{RESULTS}/sam/metrics.tsv"],
}


def method_metrics():
    """Per-case metrics tables of the configured methods (each method's own table)."""
    tables = [METHOD_TARGETS[m][-1] for m in config["methods"] if m in METHOD_TARGETS]
    return list(dict.fromkeys(tables))


def comparison_inputs(wildcards):
    inputs = {"metrics": method_metrics()}
    if "yolo_sam" in config["methods"]:
        inputs["detection"] = f"{RESULTS}/yolo/metrics.tsv"
    return inputs


def training_logs(wildcards):
    """Each trained method's own training record, for the training-curve figure."""
    logs = {}
    if {"lora_sam", "yolo_sam"} & set(config["methods"]):
        logs["lora_history"] = f"{RESULTS}/sam/lora/history.tsv"
    if "yolo_sam" in config["methods"]:
        logs["yolo_results"] = f"{RESULTS}/yolo/results.csv"
    if "nnunet" in config["methods"]:
        logs["nnunet_checkpoint"] = rules.train_nnunet.output.checkpoint
    return logs


def all_targets():
    """Every output the workflow produces for the configured datasets and methods."""
    targets = expand(slices_dir("{dataset}"), dataset=config["datasets"])
    for method in config["methods"]:
        targets += METHOD_TARGETS.get(method, [])
    if method_metrics():
        targets += [f"{RESULTS}/comparison.md", f"{RESULTS}/provenance.json"]
    return list(dict.fromkeys(targets))
