"""Rule provenance: provenance.json of the run."""

from pathlib import Path

from sambrats import logs
from sambrats.provenance import write_provenance

logs.setup(snakemake.log[0])
# The repository is where this script lies, not a parameter: a checkout moved elsewhere reruns nothing.
write_provenance(
    snakemake.output[0], snakemake.params.config, Path(snakemake.scriptdir).parent, snakemake.params.log_dir,
    snakemake.input.get("weights"),
)
