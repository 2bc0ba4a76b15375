"""Rule discover_cases: case table and rejected table of one raw BraTS folder."""

from sambrats import logs
from sambrats.brats import write_case_tables

logs.setup(snakemake.log[0])
write_case_tables(
    snakemake.params.root,
    snakemake.params.layout,
    snakemake.wildcards.dataset,
    snakemake.output.cases,
    snakemake.output.rejected,
    strict=snakemake.params.strict,
    workers=snakemake.threads,
)
