"""Rule medsam2_collect: merge the batches of one dataset."""

from sambrats import logs
from sambrats.medsam2 import collect_batches

logs.setup(snakemake.log[0])
collect_batches(
    snakemake.input,
    snakemake.output.predictions,
    snakemake.output.metrics,
    snakemake.output.metrics_2d,
    snakemake.output.skipped,
)
