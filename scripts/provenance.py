"""Rule provenance: provenance.json of the run."""

from sambrats import logs
from sambrats.provenance import write_provenance

logs.setup(snakemake.log[0])
write_provenance(
    snakemake.output[0], snakemake.params.config, snakemake.params.repo, snakemake.params.log_dir,
    snakemake.input.get("weights"),
)
