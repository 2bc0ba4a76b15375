"""Rule medsam2_standin: a stand-in checkpoint in MedSAM-2's format."""

from sambrats import logs
from sambrats.medsam2 import write_standin

logs.setup(snakemake.log[0])
write_standin(snakemake.output[0], snakemake.params.image_size, snakemake.params.seed)
