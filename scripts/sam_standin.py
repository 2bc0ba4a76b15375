"""Rule sam_standin: write the tiny stand-in SAM in save_pretrained format."""

from sambrats import logs
from sambrats.sam import TrainSettings, write_standin

logs.setup(snakemake.log[0])
write_standin(
    snakemake.wildcards.preset,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.output.curve,
    snakemake.params.cohort,
    TrainSettings(**snakemake.params.settings),
    snakemake.params.device,
)
