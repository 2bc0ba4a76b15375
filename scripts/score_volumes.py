"""Rule score_volumes: per-case 3D metrics of one run's masks of every test volume."""

from sambrats import logs
from sambrats.scoring import write_volume_scores

logs.setup(snakemake.log[0])
write_volume_scores(
    snakemake.input.masks,
    snakemake.input.splits,
    snakemake.input.cases,
    snakemake.output[0],
    snakemake.wildcards.dataset,
    snakemake.params.layout,
    snakemake.wildcards.region,
    snakemake.params.method,
    snakemake.wildcards.prompt,
    snakemake.params.nsd_tolerance_mm,
    int(snakemake.wildcards.seed),
    snakemake.input.prompts if snakemake.params.per_slice else None,
)
