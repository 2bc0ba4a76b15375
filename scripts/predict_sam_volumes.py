"""Rule predict_sam_volumes: LoRA-SAM masks of every test volume, one box prompt per slice."""

from sambrats import logs
from sambrats.sam_volumes import write_volume_masks

logs.setup(snakemake.log[0])
params = snakemake.params
write_volume_masks(
    params.base_model,
    snakemake.input.adapter,
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.output.masks,
    snakemake.output.prompts,
    params.layout,
    snakemake.wildcards.region,
    params.contrasts,
    params.percentiles,
    snakemake.wildcards.prompt,
    params.device,
    snakemake.input.get("detections"),
)
