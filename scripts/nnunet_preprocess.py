"""Rules nnunet_preprocess, nnunet_volumes_preprocess: nnU-Net plan and preprocess, our split as fold 0."""

from sambrats import logs
from sambrats.nnunet import plan_and_preprocess

logs.setup(snakemake.log[0])
plan_and_preprocess(
    snakemake.params.root,
    snakemake.params.dataset_id,
    snakemake.params.split_table,
    snakemake.threads,
    snakemake.params.configurations,
    snakemake.params.verify_integrity,
    snakemake.params.base_features,
    snakemake.params.target_spacing_mm,
    snakemake.params.batch_size_2d,
)
