"""Rule predict_nnunet_3d: test-volume masks and per-case 3D metrics of nnU-Net 3d_fullres."""

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
    params.device,
    params.nsd_tolerance_mm,
    params.seed,
    params.mirroring,
    snakemake.threads,
)
