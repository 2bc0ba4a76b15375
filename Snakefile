"""sambrats: promptable foundation models against nnU-Net for glioma segmentation on BraTS MRI.

snakemake --cores 2                                   # the embedded demo (config/demo.yaml)
snakemake --cores 8 --configfile config/config.yaml   # the paper-scale study
"""

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from sambrats.config import ConfigError, check_config, describe_schema_error

min_version("9.0")

# Every job's Python orders sets the same way (peft writes LoRA's target modules from a set).
os.environ.setdefault("PYTHONHASHSEED", "0")


# The demo is the default; a --configfile replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/demo.yaml"


SCHEMA = f"{workflow.basedir}/config/schema.yaml"
try:
    validate(config, SCHEMA)
except WorkflowError:
    raise WorkflowError(describe_schema_error(config, SCHEMA)) from None
try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/weights.smk"
include: "rules/data.smk"
include: "rules/sam.smk"
include: "rules/yolo.smk"
include: "rules/nnunet.smk"
include: "rules/nnunet_3d.smk"
include: "rules/medsam2.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
