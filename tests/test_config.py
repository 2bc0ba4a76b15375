"""Config schema and the checks the schema cannot express."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from snakemake.utils import validate

from sambrats.config import STUDY_HINT, ConfigError, check_config, describe_schema_error

from conftest import REPO

SCHEMA = REPO / "config" / "schema.yaml"


def load(name: str) -> dict:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(SCHEMA))
    return config


def leaf_properties(schema: dict, path: str = ""):
    """(key, subschema) of every property in the schema, following $ref into $defs."""
    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]
    for name, sub in schema.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        yield key, sub
        if "$ref" in sub:
            sub = {**defs[sub["$ref"].split("/")[-1]], **sub}
        yield from leaf_properties(sub, key)


def test_every_key_has_a_default_and_a_description():
    schema = yaml.safe_load(SCHEMA.read_text())
    for key, sub in leaf_properties(schema):
        resolved = {**schema["$defs"].get(sub.get("$ref", "#/").split("/")[-1], {}), **sub}
        assert "default" in resolved, key
        assert resolved.get("description"), key


def test_both_shipped_configs_validate():
    demo = load("demo.yaml")
    paper = load("config.yaml")
    assert demo["data"]["brats2024"]["root"] == "results/demo/raw/brats2024"
    assert paper["data"]["brats2024"]["root"] is None


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"seed": "abc"}, "config key seed = 'abc': 'abc' is not of type 'integer'"),
        ({"methods": ["lora_sam", "sam3"]}, "config key methods[1] = 'sam3': 'sam3' is not one of"),
        ({"contrasts": {"tc": ["dwi"]}}, "config key contrasts.tc[0] = 'dwi'"),
        ({"contrasts": {"wt": ["t1c", "t2f"]}}, "config key contrasts.wt = ['t1c', 't2f']: One MRI contrast, or three"),
        ({"split": {"train": 1.5}}, "config key split.train = 1.5: 1.5 is greater than the maximum of 1"),
        ({"colour": "red"}, "config: Additional properties are not allowed ('colour' was unexpected)"),
        ({"slices": {"volume_training": "every_slice"}}, "config key slices.volume_training = 'every_slice': "
                                                         "'every_slice' is not one of ['key_slice', 'volume_slices']"),
        ({"slices": {"volume_sampling": {"tumour_per_case": 0}}},
         "config key slices.volume_sampling.tumour_per_case = 0: 0 is less than the minimum of 1"),
    ],
)
def test_schema_errors_become_one_line_naming_key_and_value(change, expected):
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    for key, value in change.items():
        if isinstance(value, dict) and key in config:
            for sub, subvalue in value.items():
                if isinstance(subvalue, dict):
                    config[key][sub].update(subvalue)
                else:
                    config[key][sub] = subvalue
        else:
            config[key] = value
    message = describe_schema_error(config, SCHEMA)
    assert message.startswith(expected)
    assert "\n" not in message


def test_paper_config_without_data_roots_says_what_to_set_and_points_to_the_demo():
    with pytest.raises(ConfigError) as err:
        check_config(load("config.yaml"))
    message = str(err.value)
    assert message.startswith("config key data.brats2024.root is not set")
    assert "snakemake --cores 2 --configfile config/demo.yaml" in message


def test_missing_folder_ratio_and_percentile_errors(tmp_path, cohorts):
    base = load("config.yaml")
    base["data"]["brats2024"]["root"] = str(cohorts["gli"])
    base["data"]["brats2019"]["root"] = str(cohorts["legacy"])
    check_config(base)

    missing = copy.deepcopy(base)
    missing["data"]["brats2019"]["root"] = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"^config key data.brats2019.root = '.*nope': folder does not exist$"):
        check_config(missing)

    ratios = copy.deepcopy(base)
    ratios["split"]["val"] = 0.3
    with pytest.raises(ConfigError, match="add up to 1.2, not 1"):
        check_config(ratios)

    percentiles = copy.deepcopy(base)
    percentiles["slices"]["clip_percentiles"] = [99, 1]
    with pytest.raises(ConfigError, match="slices.clip_percentiles"):
        check_config(percentiles)

    fractions = copy.deepcopy(base)
    fractions["sam"]["train"].update(no_prompt_fraction=0.5, point_prompt_fraction=0.6)
    with pytest.raises(ConfigError, match=r"^config key sam.train.point_prompt_fraction = 0.6: with "
                                          r"no_prompt_fraction = 0.5 more than every batch$"):
        check_config(fractions)


def test_volume_datasets_must_be_ingested(cohorts):
    config = load("config.yaml")
    config["datasets"] = ["brats2024"]
    config["data"]["brats2024"]["root"] = str(cohorts["gli"])
    with pytest.raises(ConfigError, match=r"^config key volume_datasets = \['brats2019', 'brats2024'\]: \['brats2019'\] not in"):
        check_config(config)
    config["volume_datasets"] = []  # the study protocol only
    check_config(config)


def test_only_listed_datasets_need_a_root(cohorts):
    config = load("config.yaml")
    config["datasets"] = ["brats2019"]
    config["data"]["brats2019"]["root"] = str(cohorts["legacy"])
    config["volume_datasets"] = ["brats2019"]
    check_config(config)  # MedSAM-2's dataset brats2019 is ingested, brats2024 needs no root


def test_a_region_the_label_convention_lacks_fails_naming_the_dataset(cohorts):
    config = load("config.yaml")
    config["data"]["brats2024"]["root"] = str(cohorts["gli"])
    config["data"]["brats2019"]["root"] = str(cohorts["legacy"])
    config["regions"] = ["wt", "rc"]
    with pytest.raises(ConfigError, match=r"^config key regions\[1\] = 'rc': no such region in brats2019's BraTS 2017-2021"):
        check_config(config)
    config["datasets"] = config["volume_datasets"] = ["brats2024"]
    check_config(config)  # the GLI convention has the resection cavity


def test_a_config_without_a_study_fails_and_says_to_give_the_studys_config_first(cohorts):
    overrides_only = load("config.yaml")
    del overrides_only["study"]
    with pytest.raises(ConfigError, match=r"^config key study is not set: a --configfile replaces the demo config"):
        check_config(overrides_only)
    assert "--configfile config/config.yaml my-data.yaml" in STUDY_HINT


@pytest.mark.parametrize("layout, other, expected", [
    ("gli", None, "the folder is empty"),
    ("legacy", "gli", "is layout 'gli' meant?"),  # the two roots swapped
    ("gli", "legacy", "is layout 'legacy' meant?"),
])
def test_a_root_without_case_folders_of_its_layout_fails_at_start(tmp_path, cohorts, layout, other, expected):
    config = load("config.yaml")
    config["datasets"], config["methods"] = ["brats2019"], ["lora_sam"]
    config["data"]["brats2019"]["layout"] = layout
    root = cohorts[other] if other else tmp_path
    config["data"]["brats2019"]["root"] = str(root)
    with pytest.raises(ConfigError, match=rf"^config key data.brats2019.root = '{re.escape(str(root))}': no brats2019 case folder") as err:
        check_config(config)
    assert expected in str(err.value)


def test_weights_need_no_data_roots():
    check_config(load("config.yaml"), data=False)  # the paper config has no roots set


def test_the_hint_to_drop_a_dataset_names_every_key_that_lists_it():
    with pytest.raises(ConfigError) as err:
        check_config(load("config.yaml"))
    assert "drop 'brats2024' from `datasets` and `volume_datasets` and `dataset_2d" in str(err.value)
