"""Rule synth_cohort: write the synthetic demo cohort of one dataset."""

from sambrats import logs
from sambrats.brats import get_layout
from sambrats.outputs import staged_directory
from sambrats.synth import write_cohort

logs.setup(snakemake.log[0])
params = snakemake.params
with staged_directory(snakemake.output[0]) as folder:
    write_cohort(folder, get_layout(params.layout), params.n_cases, params.shape, params.seed, params.broken,
                 params.lesions)
