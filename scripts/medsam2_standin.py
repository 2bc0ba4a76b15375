"""Rule medsam2_standin: train the MedSAM-2 stand-in and save it in MedSAM-2's checkpoint format."""

from sambrats import logs
from sambrats.medsam2_standin import ClipTraining, write_standin

logs.setup(snakemake.log[0])
params = snakemake.params
write_standin(snakemake.output.checkpoint, snakemake.output.history, params.image_size,
              ClipTraining(**{**params.training, "shape": tuple(params.training["shape"])}), params.device)
