"""One place that seeds every random source before a model is built or trained.

On the CPU the same seed then gives the same bytes. On CUDA, deterministic algorithms are asked
for where PyTorch has them (``warn_only``: the few CUDA kernels without one, e.g. the backward
pass of bilinear upsampling, warn instead of failing), so GPU runs agree closely, not bitwise.
"""

from __future__ import annotations

import os
import random

import numpy as np

from .logs import log_numeric_path
from .numerics import pin_torch_kernels


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA); deterministic kernels,
    on the run's numeric path (``sambrats.numerics.pin_torch_kernels``), which the job's log records."""
    import torch  # here, so that modules the Snakefile imports at parse time do not pull torch in

    pin_torch_kernels()
    log_numeric_path()
    # cuBLAS needs this before its first use to make its reductions deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
