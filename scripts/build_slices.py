"""Rule build_slices: a slice set of one dataset and region."""

from sambrats import logs
from sambrats.slices import write_slice_dataset

logs.setup(snakemake.log[0])
params = snakemake.params
write_slice_dataset(
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.output[0],
    params.layout,
    params.contrasts,
    snakemake.wildcards.region,
    params.percentiles,
    workers=snakemake.threads,
    sampling=params.sampling,
)
