"""Rule evaluate_yolo: detection metrics on val and test."""

from pathlib import Path

from sambrats import logs
from sambrats.outputs import write_tsv
from sambrats.yolo import detection_metrics

logs.setup(snakemake.log[0])
params = snakemake.params
table = detection_metrics(
    snakemake.input.weights,
    Path(snakemake.input.dataset) / "data.yaml",
    params.imgsz,
    params.device,
    params.config_dir,
    params.run_dir,
)
write_tsv(table, snakemake.output[0])
