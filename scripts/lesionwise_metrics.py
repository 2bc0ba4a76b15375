"""Rule lesionwise_metrics: brats-evaluation's per-case numbers of one 3D run's test masks."""

from sambrats import logs
from sambrats.lesionwise import score_run

logs.setup(snakemake.log[0])
score_run(snakemake.input.metrics, snakemake.input.cases, snakemake.params.layout, snakemake.input.environment,
          snakemake.output[0])
