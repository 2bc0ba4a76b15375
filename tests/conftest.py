"""Shared fixtures: small synthetic cohorts in both layouts, the real cases, and a Snakemake runner."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import uuid
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sambrats.brats import GLI, LEGACY
from sambrats.outputs import write_tsv
from sambrats.slices import SliceSample, save_sample
from sambrats.synth import write_cohort

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SMALL_SHAPE = (40, 40, 20)
# Subprocess timeouts guard against hangs, they are not budgets (benchmarks/demo_budget.py measures
# those): about four times the demo's time on this project's 2-core machines, so that a slower or
# busy machine passes.
HANG_GUARD_S = 3600


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the session if any process it started (found by a marker in its environment) still runs."""
    marker = f"SAMBRATS_TEST_SESSION={uuid.uuid4().hex}".encode()
    os.environ["SAMBRATS_TEST_SESSION"] = marker.split(b"=")[1].decode()
    yield
    deadline = time.time() + 15
    while (left := session_processes(marker)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of the test session still running: {left}"


def session_processes(marker: bytes) -> dict[int, str]:
    """pid -> command line of the running processes whose environment holds ``marker`` (this one aside)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


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


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command that runs the workflow's Snakefile in ``workdir``."""
    return [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def run_snakemake(workdir: Path, *args: str, timeout: int = HANG_GUARD_S) -> subprocess.CompletedProcess:
    """Run the workflow's Snakefile in ``workdir``; stdout and stderr together in ``.stdout``."""
    return subprocess.run(
        snakemake_command(workdir, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # Snakemake 9 prints its errors to stdout
        text=True,
        timeout=timeout,
    )


def uses_the_demo(item) -> bool:
    return "demo_run" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items) -> None:
    """The tests of the demo run last (in their own order): the demo starts in the background with
    the session (``demo_in_background``), and the other tests run meanwhile."""
    items.sort(key=uses_the_demo)


@pytest.fixture(scope="session", autouse=True)
def demo_in_background(request, no_process_left_behind, tmp_path_factory):
    """The demo's Snakemake run, started with the session when a collected test needs it; stopped
    (with its jobs: SIGINT, as a user's Ctrl-C) if the session ends before it does."""
    if not any(uses_the_demo(item) for item in request.session.items):
        yield None
        return
    workdir = tmp_path_factory.mktemp("demo")
    console = (workdir / "console.log").open("w")  # what `make demo` prints (not on a terminal)
    process = subprocess.Popen(snakemake_command(workdir, "--cores", "2", "--configfile", str(REPO / "config" / "demo.yaml")),
                               stdout=console, stderr=subprocess.STDOUT)
    yield workdir, process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    console.close()


@pytest.fixture(scope="session")
def demo_run(demo_in_background) -> Path:
    """One real local run of the embedded demo, exactly as `make demo` runs it (shared by the test modules)."""
    workdir, process = demo_in_background
    returncode = process.wait(timeout=HANG_GUARD_S)
    assert returncode == 0, (workdir / "console.log").read_text()[-3000:]
    return workdir


# The demo graph with small cohorts and short trainings (its own config file, also the benchmark's).
SHORT_DEMO_CONFIG = REPO / "tests" / "data" / "short-demo.yaml"
SHORT_DEMO = yaml.safe_load(SHORT_DEMO_CONFIG.read_text())


@pytest.fixture(scope="session")
def short_demo_config() -> list[str]:
    """`--configfile` arguments of the short demo."""
    return ["--configfile", str(REPO / "config" / "demo.yaml"), str(SHORT_DEMO_CONFIG)]


@pytest.fixture(scope="session")
def short_demo_run(tmp_path_factory, short_demo_config) -> Path:
    """One local run of the short demo."""
    workdir = tmp_path_factory.mktemp("short-demo")
    result = run_snakemake(workdir, "--cores", "2", *short_demo_config)
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir


def job_rules(output: str) -> set[str]:
    """Rules of the jobs a Snakemake run (or dry run) printed, local rules included."""
    return set(re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.MULTILINE))


def disc_sample(case_id: str, seed: int, size: int = 48) -> SliceSample:
    """A bright disc on a textured background, its mask and box."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    cy, cx, radius = rng.integers(14, size - 14), rng.integers(14, size - 14), rng.integers(5, 10)
    mask = ((rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2).astype(np.uint8)
    image = np.clip(0.3 + 0.1 * rng.standard_normal((size, size)) + 0.5 * mask, 0, 1).astype(np.float32)
    ys, xs = np.nonzero(mask)
    return SliceSample(case_id, 0, image, mask, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))


def write_samples(folder, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sample = disc_sample(f"case{i:02d}", i)
        save_sample(sample, folder)
        split = "val" if i < 2 else ("test" if i < 4 else "train")
        rows.append({"case_id": sample.case_id, "split": split, "slice_index": 0, "area": sample.area,
                     "x0": sample.box[0], "y0": sample.box[1], "x1": sample.box[2], "y1": sample.box[3]})
    write_tsv(pd.DataFrame(rows), folder / "index.tsv")
