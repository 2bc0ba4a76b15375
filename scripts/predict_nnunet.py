"""Rule predict_nnunet: test-slice masks and per-case metrics of the nnU-Net baseline."""

from sambrats import logs
from sambrats.nnunet import write_predictions

logs.setup(snakemake.log[0])
params = snakemake.params
write_predictions(
    params.root,
    params.dataset_id,
    snakemake.input.raw,
    snakemake.input.slices,
    snakemake.output.predictions,
    snakemake.output.metrics,
    params.dataset,
    snakemake.wildcards.region,
    params.device,
    params.nsd_tolerance_mm,
    params.seed,
    snakemake.threads,
)
