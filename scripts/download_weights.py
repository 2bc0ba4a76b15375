"""Rule download_weights: fetch the config's pretrained weights into resources/ and record checksums."""

from pathlib import Path

from sambrats import logs
from sambrats.weights import WEIGHTS, fetch_weights

logs.setup(snakemake.log[0])
fetch_weights([WEIGHTS[path] for path in snakemake.params.weights], Path.cwd())
