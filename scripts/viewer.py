"""Rule viewer: one dataset's and region's offline NiiVue page."""

from sambrats import logs
from sambrats.viewer import ViewerJob, write_viewer

logs.setup(snakemake.log[0])
params = snakemake.params
write_viewer(
    snakemake.input.metrics,
    snakemake.input.cases,
    snakemake.input.library,
    snakemake.output[0],
    ViewerJob(snakemake.wildcards.dataset, params.layout, snakemake.wildcards.region, tuple(params.modalities),
              params.baseline, tuple(params.extra_cases)),
)
