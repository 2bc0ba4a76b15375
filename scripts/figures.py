"""Rule figures: every comparison figure of one region, PNG and SVG."""

from sambrats import logs
from sambrats.report import FIGURES, PROMPTED, write_figures

logs.setup(snakemake.log[0])
write_figures(
    snakemake.input.metrics,
    snakemake.input.slices,
    {name: snakemake.output[name] for name in FIGURES},
    snakemake.params.seed,
    lora_history=snakemake.input.get("lora_history"),
    yolo_results=snakemake.input.get("yolo_results"),
    nnunet_history=snakemake.input.get("nnunet_history"),
    click_paths={method: snakemake.input.get(f"clicks_{method}", []) for method in PROMPTED},
)
