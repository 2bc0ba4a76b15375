"""Rule figures: every comparison figure, PNG and SVG."""

from pathlib import Path

from sambrats import logs
from sambrats.report import write_figures

logs.setup(snakemake.log[0])
write_figures(
    snakemake.input.metrics,
    snakemake.input.slices,
    Path(snakemake.output.svg[0]).parent,
    snakemake.params.seed,
    lora_history=snakemake.input.get("lora_history"),
    yolo_results=snakemake.input.get("yolo_results"),
    nnunet_checkpoint=snakemake.input.get("nnunet_checkpoint"),
)
