"""Pretrained weights of the paper config: fetched once into resources/ on a machine with internet.

The `download_weights` rule runs on the login node; compute nodes only read the local copies. Each
weight's SHA-256 is recorded in ``resources/weights.sha256`` (``sha256sum -c`` format, one line per
file, paths relative to resources/); a later run checks present files against it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .outputs import staged_file

log = logging.getLogger(__name__)

RESOURCES = "resources"
MANIFEST = f"{RESOURCES}/weights.sha256"


class WeightUnavailable(RuntimeError):
    """A weight is missing, cannot be downloaded here, or differs from its recorded checksum."""


@dataclass(frozen=True)
class Weight:
    """One downloadable weight: where it goes, where it comes from, and how to fetch it by hand."""

    path: str
    source: str  # hub or GitHub repository that holds the file named like ``path``
    by_hand: str
    folder: bool = False


SAM_VIT_BASE = Weight(
    f"{RESOURCES}/sam-vit-base",
    "facebook/sam-vit-base",
    "python -c \"from transformers import SamModel, SamProcessor; "
    "[c.from_pretrained('facebook/sam-vit-base').save_pretrained('sam-vit-base') for c in (SamModel, SamProcessor)]\"",
    folder=True,
)
YOLOV8M = Weight(
    f"{RESOURCES}/yolov8m.pt",
    "ultralytics/assets",
    "python -c \"from ultralytics import YOLO; YOLO('yolov8m.pt')\"   # writes yolov8m.pt to the current folder",
)
MEDSAM2 = Weight(
    f"{RESOURCES}/MedSAM2_latest.pt",
    "wanglab/MedSAM2",
    "python -c \"from huggingface_hub import hf_hub_download; "
    "hf_hub_download('wanglab/MedSAM2', 'MedSAM2_latest.pt', local_dir='.')\"",
)
WEIGHTS = {weight.path: weight for weight in (SAM_VIT_BASE, YOLOV8M, MEDSAM2)}


def configured_weights(config: dict) -> list[Weight]:
    """The downloadable weights the config names (paths under resources/ that this module knows)."""
    named = (config["sam"]["base_model"], config["yolo"]["model"], config["medsam2"]["checkpoint"])
    return [WEIGHTS[path] for path in dict.fromkeys(named) if path in WEIGHTS]


def _fetch(weight: Weight, target: Path) -> None:
    """Download ``weight`` to ``target``, a path named like the weight; raises whatever the client raises."""
    if weight is SAM_VIT_BASE:
        from transformers import SamModel, SamProcessor

        SamModel.from_pretrained(weight.source).save_pretrained(target, safe_serialization=True)
        SamProcessor.from_pretrained(weight.source).save_pretrained(target)
    elif weight is YOLOV8M:
        from ultralytics.utils.downloads import attempt_download_asset

        attempt_download_asset(target)
    else:
        from huggingface_hub import hf_hub_download

        shutil.copyfile(hf_hub_download(weight.source, target.name), target)


def download(weight: Weight, workdir: Path) -> None:
    """Fetch one weight to its path under ``workdir``: fetched into a private folder, then renamed."""
    target = workdir / weight.path
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", weight.source, target)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
        fetched = Path(tmp) / target.name  # ultralytics names the asset after the file
        try:
            _fetch(weight, fetched)
        except Exception as err:  # each client has its own offline error; all mean the same here
            raise WeightUnavailable(
                f"{weight.path} is missing and could not be downloaded from {weight.source} "
                f"({type(err).__name__}: {err}). Compute nodes and offline machines cannot download: on a "
                f"machine with internet run\n    {weight.by_hand}\nand copy the result to {target}"
            ) from err
        if not fetched.exists():
            raise WeightUnavailable(f"{weight.path}: the download from {weight.source} wrote nothing")
        os.replace(fetched, target)


def file_checksums(path: Path, root: Path) -> dict[str, str]:
    """SHA-256 of a file, or of every file in a folder, keyed by the path relative to ``root``."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    checksums = {}
    for file in files:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        checksums[file.relative_to(root).as_posix()] = digest.hexdigest()
    return checksums


def read_manifest(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    return {name.strip(): checksum for checksum, name in lines}


def fetch_weights(weights: list[Weight], workdir: Path) -> dict[str, str]:
    """Download the missing weights, check present ones against the manifest and record every checksum.

    A weight copied by hand is taken as it is and its checksum recorded; a file whose checksum differs
    from the recorded one is an error that names it.
    """
    root = workdir / RESOURCES
    manifest_path = workdir / MANIFEST
    recorded = read_manifest(manifest_path)
    missing = []
    for weight in weights:
        target = workdir / weight.path
        if target.exists():
            log.info("%s is present; checking it", weight.path)
        else:
            try:
                download(weight, workdir)
            except WeightUnavailable as err:
                missing.append(str(err))
                continue
        for name, checksum in file_checksums(target, root).items():
            if recorded.get(name, checksum) != checksum:
                raise WeightUnavailable(
                    f"{RESOURCES}/{name} differs from the checksum recorded in {MANIFEST} "
                    f"({checksum} != {recorded[name]}): delete it to download it again, or delete its line "
                    "to accept the new file"
                )
            recorded[name] = checksum
    if missing:
        raise WeightUnavailable("\n\n".join(missing))
    with staged_file(manifest_path) as tmp:
        tmp.write_text("".join(f"{checksum}  {name}\n" for name, checksum in sorted(recorded.items())))
    return recorded
