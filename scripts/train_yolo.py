"""Rule train_yolo: offline ultralytics training; best.pt and results.csv published."""

from pathlib import Path

from sambrats import logs
from sambrats.yolo import YoloSettings, train_yolo

logs.setup(snakemake.log[0])
params = snakemake.params
train_yolo(
    Path(snakemake.input.dataset) / "data.yaml",
    params.model,
    params.run_dir,
    snakemake.output.weights,
    snakemake.output.results,
    YoloSettings(**params.settings),
    params.device,
    params.config_dir,
)
