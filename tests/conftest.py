"""Shared fixtures: small synthetic cohorts in both layouts, the real cases, and a Snakemake runner."""

from __future__ import annotations

import os

# One thread per test process and per process a test starts (before NumPy or torch start their
# pools): the tests run beside the background demo's jobs on the same cores, and OpenMP threads
# that spin at their barriers on an oversubscribed CPU waste it (a 12 s test took 79 s beside two
# busy processes on 2 cores with torch's default two threads, 23 s with one). Snakemake sets each
# job's own thread variables from its rule, so the workflow's jobs are unchanged.
from sambrats.numerics import THREAD_VARIABLES  # noqa: E402 (no NumPy, no torch)

for _variable in THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")

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


# The Snakemake runs that start in the background when the session starts (each when a collected
# test reads it), so that the unit tests run beside them on the same cores; their tests run last, in
# this order (a run's tests wait for it). The short demo's rerun starts when the short demo is done.
BACKGROUND_FIXTURES = ("short_demo_run", "short_demo_rerun", "demo_run")


def background_group(item) -> int:
    """0 for a test that reads no background run, else 1 + the index of the last run it reads."""
    names = getattr(item, "fixturenames", ())
    return max((index + 1 for index, name in enumerate(BACKGROUND_FIXTURES) if name in names), default=0)


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=background_group)


class BackgroundRun:
    """A Snakemake run in its own folder, its console in ``console.log`` there (what `make demo`
    prints off a terminal); stopped with its jobs (SIGINT, as a user's Ctrl-C) if the session ends first."""

    def __init__(self, workdir: Path, *args: str):
        self.workdir, self.args, self.process = workdir, args, None

    def start(self) -> None:
        with (self.workdir / "console.log").open("w") as console:
            self.process = subprocess.Popen(snakemake_command(self.workdir, *self.args), stdout=console,
                                            stderr=subprocess.STDOUT)

    def result(self) -> Path:
        """The run's folder once it has ended well."""
        returncode = self.process.wait(timeout=HANG_GUARD_S)
        assert returncode == 0, (self.workdir / "console.log").read_text()[-3000:]
        return self.workdir

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# The demo graph with small cohorts and short trainings (its own config file, also the benchmark's).
DEMO_CONFIG = str(REPO / "config" / "demo.yaml")
SHORT_DEMO_CONFIG = REPO / "tests" / "data" / "short-demo.yaml"
SHORT_DEMO = yaml.safe_load(SHORT_DEMO_CONFIG.read_text())
SHORT_DEMO_ARGS = ("--configfile", DEMO_CONFIG, str(SHORT_DEMO_CONFIG))
# Each background run: its folder's name and its Snakemake arguments. The demo exactly as `make
# demo` runs it, the short demo, and the short demo again in a fresh folder under another --cores
# (one thread per job either way).
BACKGROUND_RUNS = {"demo_run": ("demo", ("--cores", "2", "--configfile", DEMO_CONFIG)),
                   "short_demo_run": ("short-demo", ("--cores", "2", *SHORT_DEMO_ARGS)),
                   "short_demo_rerun": ("short-demo-rerun", ("--cores", "4", *SHORT_DEMO_ARGS))}


# BraTS's official evaluation has an environment of its own (rule brats_evaluation_env, about 40 s to
# make): made once per checkout, here, by the workflow's own rule, and linked where the workflow
# looks for it in every working directory of the session (the runs then leave it as it is).
SHARED_EVALUATION_ENV = REPO / ".brats-evaluation"
EVALUATION_ENV = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())[
    "properties"]["brats_evaluation"]["properties"]["environment"]["default"]


@pytest.fixture(scope="session")
def evaluation_environment(tmp_path_factory) -> Path:
    """The shared environment of brats-evaluation, made (or found up to date) by rule brats_evaluation_env."""
    workdir = tmp_path_factory.mktemp("brats-evaluation")
    (workdir / "shared.yaml").write_text(yaml.safe_dump({"brats_evaluation": {"environment": str(SHARED_EVALUATION_ENV)}}))
    result = run_snakemake(workdir, "--cores", "1", "--configfile", DEMO_CONFIG, str(workdir / "shared.yaml"),
                           "--", str(SHARED_EVALUATION_ENV))
    assert result.returncode == 0, result.stdout[-3000:]
    return SHARED_EVALUATION_ENV


def share_evaluation_environment(workdir: Path) -> None:
    """Link the shared brats-evaluation environment where the workflow looks for it in ``workdir``."""
    link = workdir / EVALUATION_ENV
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(SHARED_EVALUATION_ENV, target_is_directory=True)


@pytest.fixture(scope="session", autouse=True)
def background_runs(request, no_process_left_behind, tmp_path_factory):
    """The background runs that a collected test reads, by fixture name; the demo and the short demo
    start with the session (once the shared evaluation environment is there), the rerun when the
    short demo is done (``short_demo_run``)."""
    needed = {name for item in request.session.items for name in BACKGROUND_FIXTURES if name in item.fixturenames}
    if needed:
        request.getfixturevalue("evaluation_environment")
    runs = {name: BackgroundRun(tmp_path_factory.mktemp(folder), *args)
            for name, (folder, args) in BACKGROUND_RUNS.items() if name in needed}
    for run in runs.values():
        share_evaluation_environment(run.workdir)
    for name in ("demo_run", "short_demo_run"):
        if name in runs:
            runs[name].start()
    yield runs
    for run in runs.values():
        run.stop()


@pytest.fixture(scope="session")
def demo_run(background_runs) -> Path:
    """One real local run of the embedded demo, exactly as `make demo` runs it (shared by the test modules)."""
    return background_runs["demo_run"].result()


@pytest.fixture(scope="session")
def short_demo_config() -> list[str]:
    """`--configfile` arguments of the short demo."""
    return list(SHORT_DEMO_ARGS)


@pytest.fixture(scope="session")
def short_demo_run(background_runs) -> Path:
    """One local run of the short demo; when it is done, its rerun starts (if a test reads it):
    one short demo at a time beside the demo keeps the session's memory bounded."""
    workdir = background_runs["short_demo_run"].result()
    if "short_demo_rerun" in background_runs:
        background_runs["short_demo_rerun"].start()
    return workdir


@pytest.fixture(scope="session")
def short_demo_rerun(background_runs, short_demo_run) -> Path:
    """The short demo again, in a fresh folder under --cores 4."""
    return background_runs["short_demo_rerun"].result()


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
        rows.append({"sample": sample.case_id, "case_id": sample.case_id, "split": split, "slice_index": 0, "area": sample.area,
                     "x0": sample.box[0], "y0": sample.box[1], "x1": sample.box[2], "y1": sample.box[3]})
    write_tsv(pd.DataFrame(rows), folder / "index.tsv")
