# Config access, wildcard constraints and input functions shared by every rule file.

from sambrats.config import synthetic_root

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


def all_targets():
    """Every output the workflow currently produces for the configured datasets."""
    return expand(f"{RESULTS}/slices/{{dataset}}", dataset=config["datasets"])
