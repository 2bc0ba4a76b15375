"""Provenance of a run: package versions, git state, config digest, seeds, hardware, times."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from .devices import DEVICE_RECORD
from .logs import NUMERIC_RECORD
from .numerics import cpu_model, cpu_vector_extensions
from .outputs import staged_file
from .weights import read_manifest

PACKAGES = ("sambrats", "torch", "torchvision", "transformers", "peft", "ultralytics", "nnunetv2", "sam2",
            "snakemake", "snakemake-executor-plugin-slurm", "nibabel", "numpy", "pandas", "scipy", "seaborn")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path) -> dict:
    """Commit and dirty flag of the workflow's repository (None outside a git checkout)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}


def hardware() -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu_model(), "cpu_avx": cpu_vector_extensions(), "cpu_count": __import__("os").cpu_count(), "cuda": torch.version.cuda, "gpus": gpus,
            "python": platform.python_version(), "platform": platform.platform()}


def job_records(log_dir, marker: str) -> dict[str, dict]:
    """The last record after ``marker`` in each rule log, keyed by the log's path below ``log_dir``:
    what the job itself logged (under SLURM on its compute node, not the login node)."""
    jobs = {}
    for path in sorted(Path(log_dir).rglob("*.log")):
        records = [line.split(marker, 1)[1] for line in path.read_text(errors="replace").splitlines()
                   if marker in line]
        if records:
            jobs[str(path.relative_to(log_dir))] = json.loads(records[-1])
    return jobs


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def write_provenance(path, config: dict, repo, log_dir, weights_manifest=None) -> None:
    """provenance.json; the run's start is the oldest rule log, its end is now; ``jobs`` holds the
    node and device of every job that computed, ``numerics`` the numeric path every job ran on
    (CPU, torch's kernels, MKL / oneDNN / OpenBLAS pins, thread counts; from the rule logs).

    ``weights_manifest`` (resources/weights.sha256) adds the SHA-256 of each pretrained weight file.
    """
    logs = [p.stat().st_mtime for p in Path(log_dir).rglob("*.log")]
    start = dt.datetime.fromtimestamp(min(logs), dt.timezone.utc).isoformat() if logs else None
    record = {
        "packages": package_versions(),
        "git": git_state(Path(repo)),
        "config_sha256": config_digest(config),
        "config": config,
        "seeds": {"seed": config.get("seed"), "demo": config.get("demo", {}).get("seed"),
                  "sam_standin": config.get("sam", {}).get("standin", {}).get("seed")},
        "weights_sha256": read_manifest(Path(weights_manifest)) if weights_manifest else {},
        "hardware": hardware(),  # where provenance ran (under SLURM: the login node)
        "jobs": job_records(log_dir, DEVICE_RECORD),
        "numerics": job_records(log_dir, NUMERIC_RECORD),
        "start": start,
        "end": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    with staged_file(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str))
