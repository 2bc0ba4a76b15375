"""Rule split_cases: seeded patient-level split of one dataset."""

from sambrats import logs
from sambrats.splits import write_split

logs.setup(snakemake.log[0])
write_split(snakemake.input.cases, snakemake.output[0], snakemake.params.ratios, snakemake.params.seed)
