"""Rule predict_yolo_boxes: the box table that prompts SAM in the automatic pipeline."""

from sambrats import logs
from sambrats.outputs import write_tsv
from sambrats.yolo import predict_boxes

logs.setup(snakemake.log[0])
params = snakemake.params
chosen, every = predict_boxes(
    snakemake.input.weights,
    snakemake.input.slices,
    params.imgsz,
    params.conf,
    params.policy,
    params.device,
    params.config_dir,
)
write_tsv(chosen, snakemake.output.chosen)
write_tsv(every, snakemake.output.every)
