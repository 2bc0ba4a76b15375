"""Where models run: CUDA when present (``device: auto``), else the CPU."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket

import torch

from .logs import log_numeric_path

log = logging.getLogger(__name__)

# The line every job logs when it picks its device; provenance gathers them from the rule logs.
DEVICE_RECORD = "job device: "


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU. Logs where the job runs (see ``device_record``)."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
    else:
        device = torch.device(name)
    log.info("%s%s", DEVICE_RECORD, json.dumps(device_record(device), sort_keys=True))
    log_numeric_path()  # again, now that torch is loaded: its kernels and threads
    return device


def device_record(device: torch.device) -> dict:
    """The node and device a job computes on (under SLURM with its job id)."""
    return {"host": socket.gethostname(), "device": device.type,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on the CPU (where bf16 is slower)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
