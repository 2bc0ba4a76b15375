"""Rule medsam2_automatic: MedSAM-2 on every test volume from the detector's most confident box."""

from sambrats import logs
from sambrats.medsam2 import MedsamSettings, predict_detected

logs.setup(snakemake.log[0])
params = snakemake.params
predict_detected(
    snakemake.input.checkpoint,
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.input.detections,
    snakemake.output.masks,
    snakemake.output.prompts,
    params.layout,
    params.contrasts,
    MedsamSettings(**params.settings),
    params.device,
)
