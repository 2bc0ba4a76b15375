"""The pinned numeric path: what it sets, and that a job's torch and MKL run on it (read back inside)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sambrats import numerics

HAS_AVX2 = "avx2" in numerics.cpu_vector_extensions()

# A child process that reads its numeric path back after it has run torch's kernels (BLAS, conv).
READ_BACK = """
import json, torch
torch.nn.functional.conv2d(torch.ones(1, 1, 8, 8), torch.ones(1, 1, 3, 3)) @ torch.ones(6, 6)
from sambrats.numerics import numeric_path
print(json.dumps(numeric_path()))
"""


def child_numeric_path(environ: dict, prelude: str = "") -> dict:
    """The numeric path a child process reads back, after ``prelude`` (Python) has run in it."""
    result = subprocess.run([sys.executable, "-c", prelude + READ_BACK], env=environ, capture_output=True,
                            text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_portable_pins_torch_mkl_onednn_and_openblas_native_pins_nothing():
    assert numerics.numeric_environment("portable") == {
        "SAMBRATS_NUMERICS": "portable", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
    assert numerics.numeric_environment("native") == {"SAMBRATS_NUMERICS": "native"}
    with pytest.raises(ValueError, match="'fast'"):
        numerics.numeric_environment("fast")


def test_native_after_portable_removes_the_pins():
    environ = {"PATH": "/bin"}
    numerics.pin("portable", environ)
    assert environ["MKL_CBWR"] == "COMPATIBLE"
    numerics.pin("native", environ)
    assert environ == {"PATH": "/bin", "SAMBRATS_NUMERICS": "native"}


@pytest.mark.skipif(not HAS_AVX2, reason="this CPU has no AVX2, the portable path's floor")
def test_a_process_started_with_the_pins_computes_on_the_pinned_path():
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    numerics.pin("portable", environ)
    inside = child_numeric_path(environ)
    assert inside["numerics"] == "portable" and inside["torch_cpu_capability"] == "AVX2"
    assert inside["mkl_cbwr"] == "COMPATIBLE" and inside["onednn_max_cpu_isa"] == "AVX2"
    assert inside["torch_threads"] == 1 and inside["mkl"].startswith("Intel")
    # torch obeys the variable it finds, not a config value: another capability gives other kernels.
    inside = child_numeric_path({**environ, "ATEN_CPU_CAPABILITY": "default"})
    assert inside["torch_cpu_capability"] == "DEFAULT"


@pytest.mark.parametrize("mode, enabled", [("portable", False), ("native", True)])
def test_seeding_a_job_puts_its_convolutions_on_the_path_of_its_mode(mode, enabled):
    """portable: oneDNN and NNPACK off (ATen's convolutions); native: torch's own choice."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    numerics.pin(mode, environ)
    inside = child_numeric_path(environ, "from sambrats.seeding import seed_everything; seed_everything(0)\n")
    assert inside["onednn_enabled"] is enabled and inside["nnpack_enabled"] is enabled
