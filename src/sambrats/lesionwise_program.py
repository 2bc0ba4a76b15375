"""BraTS's official lesion-wise evaluation of one run's region masks; runs in its own environment.

This file is run by path with the Python of the environment that rule ``brats_evaluation_env``
makes (brats-evaluation and panoptica, pinned in envs/brats-evaluation.txt), not imported by
sambrats: it needs nothing but the standard library and that package.

    python lesionwise_program.py JOBS.json RESULTS.json

JOBS.json: ``{"region": "wt", "cases": [{"case_id": ..., "prediction": path, "reference": path}]}``,
both masks NIfTI with the region as label 3 (see :mod:`sambrats.lesionwise`). RESULTS.json: per
case what the package reports for that region (panoptica's result as a dict), in the jobs' order.
"""

import json
import math
import sys
from importlib.metadata import version
from importlib.resources import files

CONFIG = "gli"  # the package's BraTS 2024 glioma config: its wt, tc and et groups
GROUPS = ("snfh", "et", "netc", "rc", "tc", "wt")


def finite(value):
    """JSON has no inf or NaN: they travel as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def main(jobs_path: str, results_path: str) -> None:
    from panoptica import Panoptica_Evaluator

    jobs = json.loads(open(jobs_path).read())
    region = jobs["region"]
    config = files("brats_evaluation").joinpath("configs", f"config_{CONFIG}.yaml")
    evaluator = Panoptica_Evaluator.load_from_config(str(config))
    print(f"brats-evaluation {version('brats-evaluation')}, panoptica {version('panoptica')}, "
          f"config {CONFIG}, region {region}: {len(jobs['cases'])} cases", flush=True)
    results = []
    for number, case in enumerate(jobs["cases"], 1):
        outcome = evaluator.evaluate(case["prediction"], case["reference"],
                                     skip_groups=[group for group in GROUPS if group != region])[region]
        record = {key: finite(value) for key, value in outcome.to_dict(True).items() if key != "reference_instances"}
        results.append({"case_id": case["case_id"], **record})
        print(f"[{number}/{len(jobs['cases'])}] {case['case_id']}: {record['tp']} TP, {record['fp']} FP, "
              f"{record['fn']} FN lesions", flush=True)
    with open(results_path, "w") as out:
        json.dump({"brats_evaluation": version("brats-evaluation"), "panoptica": version("panoptica"),
                   "config": CONFIG, "region": region, "cases": results}, out, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
