"""Rule brats_evaluation_env: the official BraTS evaluation's own virtual environment."""

from sambrats import logs
from sambrats.lesionwise import create_environment

logs.setup(snakemake.log[0])
create_environment(snakemake.output[0], snakemake.input[0], snakemake.params.python)
