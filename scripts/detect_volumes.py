"""Rule detect_volumes: the detector's most confident box on every slice of every test volume."""

from sambrats import logs
from sambrats.detection import write_volume_detections

logs.setup(snakemake.log[0])
params = snakemake.params
write_volume_detections(
    snakemake.input.weights,
    params.config_dir,
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.output[0],
    params.layout,
    params.contrasts,
    params.percentiles,
    params.imgsz,
    params.conf,
    params.device,
)
