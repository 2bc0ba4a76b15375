"""Rule viewer_library: NiiVue's bundle and licence from its pinned npm tarball."""

from sambrats import logs
from sambrats.viewer import fetch_niivue

logs.setup(snakemake.log[0])
fetch_niivue(snakemake.params.tarball, snakemake.params.integrity, snakemake.output[0])
