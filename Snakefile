"""sambrats: promptable foundation models against nnU-Net for glioma segmentation on BraTS MRI.

snakemake --cores 2                                   # the embedded demo (config/demo.yaml)
snakemake --cores 8 --resources gpu=1 --configfile config/config.yaml   # the paper-scale study
"""

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from sambrats.config import ConfigError, check_config, describe_schema_error
from sambrats.numerics import pin as pin_numerics

min_version("9.0")

# Every job's Python orders sets the same way (peft writes LoRA's target modules from a set).
os.environ.setdefault("PYTHONHASHSEED", "0")
# The repository the jobs' conda environment installs sambrats from (envs/sambrats.post-deploy.sh).
os.environ.update(SAMBRATS_REPO=workflow.basedir)


# The demo is the default; a --configfile replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/demo.yaml"


SCHEMA = f"{workflow.basedir}/config/schema.yaml"
try:
    validate(config, SCHEMA)
except WorkflowError:
    raise WorkflowError(describe_schema_error(config, SCHEMA)) from None
# Weights need no data: `snakemake download_weights` works before the data roots are set. (Snakemake
# knows its targets only after reading this file, so the command line is asked; a cluster job of the
# rule comes back as `--target-jobs download_weights:…`.)
WEIGHTS_ONLY = any(arg.split(":")[0] == "download_weights" for arg in sys.argv[1:])
try:
    check_config(config, data=not WEIGHTS_ONLY)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Every job's torch, MKL, oneDNN and OpenBLAS on the config's numeric path (sambrats.numerics).
pin_numerics(config["numerics"])
# Progress bars belong on a terminal: in a log file or a pipe (CI, `make demo | tee`) the libraries'
# bars are off and sambrats.progress writes one line when a stage starts and one when it ends.
# Ultralytics draws its own bars (its epoch table is one) unless it is quiet: off a terminal it is,
# and each epoch's results are in the run's results.csv.
if not sys.stderr.isatty():
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/weights.smk"
include: "rules/data.smk"
include: "rules/sam.smk"
include: "rules/yolo.smk"
include: "rules/nnunet.smk"
include: "rules/nnunet_volumes.smk"
include: "rules/medsam2.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
