"""Rule predict_nnunet_volumes: test-volume masks and per-case 3D metrics of one nnU-Net configuration."""

from sambrats import logs
from sambrats.nnunet import write_volume_predictions

logs.setup(snakemake.log[0])
params = snakemake.params
write_volume_predictions(
    params.root,
    params.dataset_id,
    snakemake.input.raw,
    snakemake.input.cases,
    snakemake.output.predictions,
    snakemake.output.metrics,
    snakemake.wildcards.dataset,
    params.layout,
    snakemake.wildcards.region,
    snakemake.wildcards.configuration,
    params.device,
    params.nsd_tolerance_mm,
    params.seed,
    params.mirroring,
    snakemake.threads,
)
