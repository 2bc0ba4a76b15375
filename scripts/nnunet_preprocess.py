"""Rule nnunet_preprocess: nnU-Net plan and preprocess, our split as fold 0."""

from sambrats import logs
from sambrats.nnunet import plan_and_preprocess

logs.setup(snakemake.log[0])
plan_and_preprocess(
    snakemake.params.root,
    snakemake.params.dataset_id,
    snakemake.params.split_table,
    snakemake.threads,
    snakemake.params.configuration,
    snakemake.params.verify_integrity,
    snakemake.params.base_features,
)
