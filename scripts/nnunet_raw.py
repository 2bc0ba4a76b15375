"""Rule nnunet_raw: the slice dataset as an nnU-Net raw dataset."""

from sambrats import logs
from sambrats.nnunet import write_raw_dataset

logs.setup(snakemake.log[0])
params = snakemake.params
write_raw_dataset(
    snakemake.input.slices, snakemake.input.cases, snakemake.output[0], params.layout, params.channels, params.percentiles
)
