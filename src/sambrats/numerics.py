"""The numeric code path of every job, pinned in one place so that a config gives the same bytes
wherever the pinned libraries allow it.

torch's own CPU kernels (ATen), MKL (torch's BLAS), oneDNN (torch's convolutions) and OpenBLAS
(NumPy's BLAS) each pick their code by the CPU they find: AVX-512 where the CPU has it, and MKL
one path on Intel, another on AMD. Each path rounds differently, and training turns the last bit
into a different model. ``numerics: portable`` (the default) fixes each of them to its AVX2
path, and turns oneDNN and NNPACK off in every process that computes with torch: oneDNN sizes
its convolution blocks by the CPU's caches even on its AVX2 path (so AMD EPYC and Intel Xeon gave
other models, see the README), so convolutions run in ATen (im2col + MKL) instead. ``native``
leaves each library its own choice (faster, bytes of that CPU model only).
Thread counts matter too: they come from the rule's ``threads``, at most the config's ``threads``
and ``--cores`` (Snakemake sets ``OMP_NUM_THREADS``): with ``threads: 1`` (the demo) every job has
one thread under any ``--cores``.
Nothing here pins CUDA.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

NUMERICS_MODES = ("portable", "native")

# torch: its AVX2 kernels; MKL: its conditional numerical reproducibility mode that gives the same
# results on Intel and AMD CPUs (MKL_CBWR=AVX2 holds only across Intel CPUs: on AMD MKL takes its
# AUTO branch, measured here to differ from both); oneDNN: no JIT kernel above AVX2; OpenBLAS:
# its Haswell (AVX2) kernels instead of the one for the CPU it finds.
PORTABLE_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
# Read back from a job's own environment (each job is a process of its own).
MODE_VARIABLE = "SAMBRATS_NUMERICS"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def numeric_environment(mode: str) -> dict[str, str]:
    """The environment variables that put every job of a run on the numeric path of ``mode``."""
    if mode not in NUMERICS_MODES:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS_MODES)}, not {mode!r}")
    pinned = PORTABLE_ENVIRONMENT if mode == "portable" else {}
    return {MODE_VARIABLE: mode, **pinned}


def pin(mode: str, environ=os.environ) -> None:
    """Set the numeric path of ``mode`` for every job started from here (``native`` removes the pins
    that an earlier ``portable`` set, so that each library chooses for itself again)."""
    if mode == "native":
        for name in PORTABLE_ENVIRONMENT:
            environ.pop(name, None)
    environ.update(numeric_environment(mode))


def pin_torch_kernels(environ=os.environ) -> None:
    """Under ``portable``, turn torch's oneDNN and NNPACK off in this process (and the workers it
    forks): a process setting, not an environment variable, so every job that computes with torch
    calls this before its first convolution (``seed_everything``, ``sambrats.processes``)."""
    if environ.get(MODE_VARIABLE) != "portable":
        return
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_vector_extensions() -> list[str]:
    """The CPU's AVX-family flags (``avx2``, ``avx512f``, ...), from /proc/cpuinfo on Linux."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return sorted(flag for flag in line.split(":", 1)[1].split() if flag.startswith("avx"))
    return []


def mkl_version() -> str | None:
    """The version string of the MKL that torch carries (read from torch's own library)."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        version = ctypes.CDLL(str(library)).MKL_Get_Version_String
    except (OSError, AttributeError):
        return None
    buffer = ctypes.create_string_buffer(256)
    version(buffer, len(buffer))
    return buffer.value.decode(errors="replace").strip()


def numeric_path() -> dict:
    """The numeric path in force in this process: the pins as this job sees them, the CPU, and
    (where the job has loaded torch) the kernels torch dispatches to and its thread counts."""
    record = {
        "numerics": os.environ.get(MODE_VARIABLE),
        **{name.lower(): os.environ.get(name) for name in PORTABLE_ENVIRONMENT},
        **{name.lower(): os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu": cpu_model(),
        "cpu_avx": cpu_vector_extensions(),
    }
    if "torch" in sys.modules:
        import torch

        record.update(torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                      torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads(),
                      mkl=mkl_version(), onednn=torch.backends.mkldnn.is_available(),
                      onednn_enabled=torch.backends.mkldnn.enabled, nnpack_enabled=torch._C._get_nnpack_enabled())
    return record
