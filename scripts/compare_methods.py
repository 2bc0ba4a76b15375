"""Rule compare_methods: comparison.tsv, .md and .html."""

from sambrats import logs
from sambrats.report import write_comparison

logs.setup(snakemake.log[0])
write_comparison(
    snakemake.input.metrics,
    dict(zip(map(tuple, snakemake.params.detection_runs), snakemake.input.get("detection", []))),
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.output.html,
    snakemake.params.resamples,
    snakemake.params.seed,
    snakemake.params.notes,
    snakemake.params.inputs,
    snakemake.params.detector,
    dict(zip(snakemake.params.datasets, snakemake.input.splits)),
    snakemake.params.study_scope,
    snakemake.input.lesionwise,
    snakemake.params.training,
)
