"""Rule yolo_dataset: export the slice dataset in the ultralytics layout."""

from sambrats import logs
from sambrats.yolo import export_dataset

logs.setup(snakemake.log[0])
export_dataset(snakemake.input.slices, snakemake.output[0])
