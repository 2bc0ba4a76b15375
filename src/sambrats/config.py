"""Checks of the workflow config beyond its JSON schema, with one-line messages naming the key."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from .brats import find_case_folders, get_layout, no_case_folders
from .splits import SPLITS

DEMO_HINT = "to try the workflow without data: snakemake --cores 2 --configfile config/demo.yaml"
DATASET_NAMES = {
    "brats2024": "BraTS 2024 GLI training data (folders BraTS-GLI-xxxxx-xxx)",
    "brats2019": "BraTS 2019 training data (the folder with HGG/ and LGG/)",
}


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the value."""


def synthetic_root(dataset: str) -> str:
    """Root of the demo cohort of ``dataset``, written by the workflow itself."""
    return f"results/demo/raw/{dataset}"


def key_name(path) -> str:
    """``data.brats2024.root`` / ``methods[1]`` from a JSON path."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "<top level>"


def describe_schema_error(config: dict, schema_path: str | Path) -> str:
    """One line for the most relevant schema violation: key, offending value, expectation."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    error = jsonschema.exceptions.best_match(errors)
    if error is None:
        return "config: invalid (no schema violation found)"
    if error.validator == "additionalProperties":
        return f"config: {error.message} at {key_name(error.absolute_path)}"
    message = error.message
    if error.validator == "oneOf":  # jsonschema names no branch: say what the key takes
        message = error.schema.get("description", message)
    return f"config key {key_name(error.absolute_path)} = {error.instance!r}: {message}"


STUDY_HINT = (
    "a --configfile replaces the demo config, and keys it leaves out take the schema's defaults (one "
    "region, MedSAM-2 on one dataset, SAM from the hub at run time); give the study's config first: "
    "--configfile config/config.yaml my-data.yaml (the paper-scale study) or --configfile "
    "config/demo.yaml my-changes.yaml (the demo); a complete config of your own names its study "
    "(`study: my-study`)"
)


def keys_naming(config: dict, dataset: str) -> list[str]:
    """The config keys that name ``dataset``: all of them must drop it to leave it out."""
    keys = ["datasets"] if dataset in config["datasets"] else []
    if dataset in config["volume_datasets"]:
        keys.append("volume_datasets")
    if config.get("dataset_2d") == dataset:
        keys.append("dataset_2d (the 2D methods' dataset)")
    return keys


def check_data_root(config: dict, dataset: str, workdir: Path) -> None:
    """The root of ``dataset`` is set, exists and holds case folders of its layout (listed now, at
    start, not when case discovery runs: under SLURM that is after queueing)."""
    settings = config["data"][dataset]
    key = f"data.{dataset}"
    root = settings.get("root")
    if not root:
        raise ConfigError(
            f"config key {key}.root is not set: point it at your {DATASET_NAMES[dataset]}, or drop "
            f"{dataset!r} from {' and '.join(f'`{name}`' for name in keys_naming(config, dataset))}; {DEMO_HINT}"
        )
    if root == synthetic_root(dataset):
        return
    if not (workdir / root).is_dir():
        raise ConfigError(f"config key {key}.root = {root!r}: folder does not exist")
    layout = get_layout(settings["layout"])
    if not find_case_folders(workdir / root, layout):
        raise ConfigError(f"config key {key}.root = {root!r}: {no_case_folders(workdir / root, layout, dataset)}")


def check_config(config: dict, workdir: str | Path = ".", data: bool = True) -> None:
    """Raise ConfigError for values the schema cannot judge (a study, paths, sums, layout names).

    ``data=False`` leaves the data roots unchecked (for ``download_weights``: weights need no data)."""
    workdir = Path(workdir)
    if not config.get("study"):
        raise ConfigError(f"config key study is not set: {STUDY_HINT}")
    for dataset in config["datasets"]:
        if data:
            check_data_root(config, dataset, workdir)
        layout = get_layout(config["data"][dataset]["layout"])
        for number, region in enumerate(config["regions"]):
            if region not in layout.region_labels:
                raise ConfigError(
                    f"config key regions[{number}] = {region!r}: no such region in {dataset}'s "
                    f"{layout.description} label convention (it has {', '.join(layout.region_labels)})"
                )
    missing = [name for name in config["volume_datasets"] if name not in config["datasets"]]
    if missing:
        raise ConfigError(
            f"config key volume_datasets = {config['volume_datasets']}: {missing} not in `datasets` "
            f"{config['datasets']}, so it is not ingested (the volume protocol's datasets; [] runs the study's only)"
        )
    ratios = config["split"]
    total = sum(ratios[name] for name in SPLITS)
    if abs(total - 1) > 1e-6:
        raise ConfigError(f"config key split = {ratios}: the ratios add up to {total:g}, not 1")
    low, high = config["slices"]["clip_percentiles"]
    if not low < high:
        raise ConfigError(
            f"config key slices.clip_percentiles = {[low, high]}: the first must be below the second"
        )
    train = config["sam"]["train"]
    if train["no_prompt_fraction"] + train["point_prompt_fraction"] > 1:
        raise ConfigError(
            f"config key sam.train.point_prompt_fraction = {train['point_prompt_fraction']}: with "
            f"no_prompt_fraction = {train['no_prompt_fraction']} more than every batch"
        )
