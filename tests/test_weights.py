"""download_weights: hub downloads (from a local hub cache, offline), offline errors, checksums."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from transformers import SamModel

from sambrats import sam, weights
from sambrats.weights import MANIFEST, MEDSAM2, SAM_VIT_BASE, YOLOV8M, WeightUnavailable, fetch_weights

from conftest import REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(hf_home: Path, repo: str, source: Path) -> None:
    """Put ``source`` (a file or a folder's files) into the Hugging Face cache as ``repo``'s main revision."""
    base = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / COMMIT
    if source.is_dir():
        shutil.copytree(source, snapshot)
    else:
        snapshot.mkdir(parents=True)
        shutil.copy(source, snapshot / source.name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(COMMIT)


def fetch_offline(workdir: Path, hf_home: Path, *paths: str) -> subprocess.CompletedProcess:
    """fetch_weights in a fresh interpreter with the hub in offline mode and its cache at ``hf_home``."""
    code = ("import sys; from pathlib import Path; from sambrats.weights import WEIGHTS, fetch_weights; "
            "fetch_weights([WEIGHTS[p] for p in sys.argv[2:]], Path(sys.argv[1]))")
    env = os.environ | {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.run([sys.executable, "-c", code, str(workdir), *paths], env=env, capture_output=True,
                          text=True, timeout=300)


def sha256sum_check(workdir: Path) -> str:
    """The manifest checked by coreutils, independently of our hashing."""
    result = subprocess.run(["sha256sum", "-c", Path(MANIFEST).name], cwd=workdir / "resources",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_paper_config_names_the_three_weights_and_the_demo_none():
    paper = yaml.safe_load((REPO / "config/config.yaml").read_text())
    demo = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    assert weights.configured_weights(paper) == [SAM_VIT_BASE, YOLOV8M, MEDSAM2]
    assert weights.configured_weights(demo) == []


def test_medsam2_checkpoint_comes_from_the_hub_repository_with_its_checksum(tmp_path):
    checkpoint = tmp_path / "MedSAM2_latest.pt"
    checkpoint.write_bytes(os.urandom(4096))
    hub_cache(tmp_path / "hf", "wanglab/MedSAM2", checkpoint)
    result = fetch_offline(tmp_path / "work", tmp_path / "hf", MEDSAM2.path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "work" / MEDSAM2.path).read_bytes() == checkpoint.read_bytes()
    assert sha256sum_check(tmp_path / "work") == "MedSAM2_latest.pt: OK\n"


def test_sam_vit_base_is_saved_as_a_save_pretrained_folder(tmp_path):
    hub_model = tmp_path / "hub-sam"
    SamModel(sam.tiny_sam_config(64, 16, 1, 16)).save_pretrained(hub_model)
    sam.sam_processor(64).save_pretrained(hub_model)
    hub_cache(tmp_path / "hf", "facebook/sam-vit-base", hub_model)
    result = fetch_offline(tmp_path / "work", tmp_path / "hf", SAM_VIT_BASE.path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "work" / SAM_VIT_BASE.path
    assert (folder / "model.safetensors").exists() and (folder / "processor_config.json").exists()
    model, processor = sam.load_base(folder, sam.torch.device("cpu"))
    assert model.config.vision_config.image_size == 64
    assert "sam-vit-base/model.safetensors: OK" in sha256sum_check(tmp_path / "work")
    assert not [p for p in (tmp_path / "work/resources").iterdir() if p.name.startswith(".download")]


def test_offline_without_the_files_names_what_to_copy_where_and_writes_nothing(tmp_path):
    result = fetch_offline(tmp_path / "work", tmp_path / "hf", SAM_VIT_BASE.path, MEDSAM2.path)
    assert result.returncode == 1
    message = result.stderr
    for weight in (SAM_VIT_BASE, MEDSAM2):  # every missing weight in one message
        assert f"{weight.path} is missing and could not be downloaded from {weight.source}" in message
        assert weight.by_hand in message
        assert f"copy the result to {tmp_path / 'work' / weight.path}" in message
    assert sorted(p.name for p in (tmp_path / "work/resources").iterdir()) == []


def test_yolo_weights_without_network_fail_with_the_manual_step(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr("socket.socket.connect", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)
    monkeypatch.setattr("socket.getaddrinfo", refuse)
    with pytest.raises(WeightUnavailable, match="resources/yolov8m.pt is missing") as err:
        fetch_weights([YOLOV8M], tmp_path)
    assert YOLOV8M.by_hand in str(err.value)
    assert list((tmp_path / "resources").iterdir()) == []


def test_copied_weights_are_recorded_and_a_changed_one_is_refused(tmp_path):
    (tmp_path / "resources").mkdir()
    (tmp_path / YOLOV8M.path).write_bytes(b"weights copied by hand")
    recorded = fetch_weights([YOLOV8M], tmp_path)
    assert list(recorded) == ["yolov8m.pt"]
    assert sha256sum_check(tmp_path) == "yolov8m.pt: OK\n"
    (tmp_path / YOLOV8M.path).write_bytes(b"another file")
    with pytest.raises(WeightUnavailable, match=r"resources/yolov8m.pt differs from the checksum recorded"):
        fetch_weights([YOLOV8M], tmp_path)
