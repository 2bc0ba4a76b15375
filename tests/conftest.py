"""Shared fixtures: small synthetic cohorts in both layouts, the real cases, and a Snakemake runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sambrats.brats import GLI, LEGACY
from sambrats.synth import write_cohort

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SMALL_SHAPE = (40, 40, 20)


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory) -> dict[str, Path]:
    """Six valid cases per layout, written once per session; tests copy before changing them."""
    root = tmp_path_factory.mktemp("cohorts")
    write_cohort(root / "gli", GLI, 6, SMALL_SHAPE, seed=3)
    write_cohort(root / "legacy", LEGACY, 6, SMALL_SHAPE, seed=3)
    return {"gli": root / "gli", "legacy": root / "legacy"}


@pytest.fixture
def cohort_copy(cohorts, tmp_path):
    """A private copy of a session cohort, free to break."""

    def copy(layout: str) -> Path:
        target = tmp_path / layout
        shutil.copytree(cohorts[layout], target)
        return target

    return copy


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real BraTS cases not available: {REAL_DATA} is absent")
    return REAL_DATA


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the workflow's Snakefile in ``workdir``; stdout and stderr together in ``.stdout``."""
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # Snakemake 9 prints its errors to stdout
        text=True,
        timeout=timeout,
    )
