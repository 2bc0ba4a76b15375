#!/usr/bin/env bash
# Run by Snakemake once, after it creates the jobs' conda environment from sambrats.yaml
# (`--software-deployment-method conda`): installs the workflow's own package, sambrats, from the
# repository the Snakefile lies in (SAMBRATS_REPO, set by the Snakefile), without its dependencies,
# which sambrats.yaml already pins.
set -euo pipefail
python -m pip install --no-deps -e "${SAMBRATS_REPO:?SAMBRATS_REPO is set by the Snakefile}"
