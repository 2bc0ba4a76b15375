"""Rule train_nnunet: nnU-Net's trainer on fold 0 (resumes from checkpoint_latest.pth)."""

from sambrats import logs
from sambrats.nnunet import train

logs.setup(snakemake.log[0])
params = snakemake.params
train(
    params.root,
    params.dataset,
    params.dataset_id,
    params.epochs,
    params.iterations,
    params.val_iterations,
    params.device,
    params.seed,
    snakemake.output.history,
    params.augmentation_workers,
    params.configuration,
)
