"""Rule medsam2_prompts: MedSAM-2's point modes and click protocol on the test volumes."""

from sambrats import logs
from sambrats.clicks import point_modes
from sambrats.medsam2 import BatchJob, MedsamSettings, predict_prompted

logs.setup(snakemake.log[0])
params = snakemake.params
predict_prompted(
    snakemake.input.checkpoint,
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.output.masks,
    snakemake.output.metrics,
    snakemake.output.clicks,
    BatchJob(snakemake.wildcards.dataset, params.layout, tuple(params.contrasts), snakemake.wildcards.region, 0, 1),
    point_modes(params.points),
    params.clicks,
    params.volume_cases,
    MedsamSettings(**params.settings),
    params.device,
)
