"""Rule predict_sam: every prompt mode of LoRA-SAM and zero-shot SAM on the test split."""

from sambrats import logs
from sambrats.clicks import point_modes
from sambrats.sam import write_predictions

logs.setup(snakemake.log[0])
write_predictions(
    snakemake.params.base_model,
    snakemake.input.adapter,
    snakemake.input.slices,
    snakemake.output.predictions,
    snakemake.output.metrics,
    snakemake.wildcards.dataset,
    snakemake.wildcards.region,
    snakemake.params.jitters,
    snakemake.params.seed,
    snakemake.params.nsd_tolerance_mm,
    int(snakemake.wildcards.seed),
    snakemake.params.device,
    yolo_boxes=snakemake.input.get("yolo_boxes"),
    points=point_modes(snakemake.params.points),
    n_clicks=snakemake.params.clicks,
    clicks_path=snakemake.output.clicks,
)
