"""Rule nnunet_volumes_raw: a dataset's volumes as an nnU-Net raw dataset."""

from sambrats import logs
from sambrats.nnunet import write_raw_volumes

logs.setup(snakemake.log[0])
write_raw_volumes(
    snakemake.input.cases,
    snakemake.input.splits,
    snakemake.output[0],
    snakemake.params.layout,
    snakemake.params.channels,
    snakemake.wildcards.region,
)
