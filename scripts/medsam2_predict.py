"""Rule medsam2_predict: MedSAM-2 on one batch of volumes."""

from pathlib import Path

from sambrats import logs
from sambrats.medsam2 import BatchJob, MedsamSettings, predict_batch

logs.setup(snakemake.log[0])
params = snakemake.params
predict_batch(
    snakemake.input.checkpoint,
    snakemake.input.cases,
    snakemake.input.splits,
    Path(snakemake.input.slices) / "index.tsv",
    snakemake.output[0],
    params.predictions_dir,
    BatchJob(snakemake.wildcards.dataset, params.layout, tuple(params.contrasts), snakemake.wildcards.region,
             int(snakemake.wildcards.batch), params.n_batches),
    MedsamSettings(**params.settings),
    params.device,
)
