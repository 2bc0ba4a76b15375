"""Rule train_lora_sam: LoRA fine-tuning of SAM on the slice dataset."""

from sambrats import logs
from sambrats.sam import TrainSettings, train_lora_sam

logs.setup(snakemake.log[0])
train_lora_sam(
    snakemake.params.base_model,
    snakemake.input.slices,
    snakemake.output.adapter,
    snakemake.output.history,
    snakemake.output.curve,
    snakemake.params.lora,
    TrainSettings(**snakemake.params.settings),
    snakemake.params.device,
)
