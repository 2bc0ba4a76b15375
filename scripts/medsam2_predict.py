"""Rule medsam2_predict: MedSAM-2 on one batch of test volumes."""

from pathlib import Path

from sambrats import logs
from sambrats.medsam2 import predict_batch
from sambrats.devices import resolve_device

logs.setup(snakemake.log[0])
params = snakemake.params
predict_batch(
    snakemake.input.checkpoint,
    snakemake.input.cases,
    snakemake.input.splits,
    Path(snakemake.input.slices) / "index.tsv",
    snakemake.output[0],
    snakemake.wildcards.dataset,
    params.layout,
    params.modality,
    snakemake.wildcards.region,
    params.settings,
    int(snakemake.wildcards.batch),
    params.n_batches,
    resolve_device(params.device),
)
