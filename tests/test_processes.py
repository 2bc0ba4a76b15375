"""Child processes end with the step: a killed trainer takes its workers along, a finished step its group."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sambrats.processes import guarded_command, run_logged

TESTS = Path(__file__).resolve().parent


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def wait_until_ended(pid: int, seconds: float = 10) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def fork_worker_and_wait() -> None:
    """Runs under the guard: one multiprocessing worker (a fork, like nnU-Net's augmentation workers)."""
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,))
    worker.start()
    Path(os.environ["WORKER_PID_FILE"]).write_text(str(worker.pid))
    time.sleep(600)


def start_program_and_fail() -> None:
    """Runs under the guard: starts a separate program, then ends with an error, leaving it behind."""
    program = subprocess.Popen(["sleep", "600"])
    Path(os.environ["WORKER_PID_FILE"]).write_text(str(program.pid))
    os._exit(3)


def environment(tmp_path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TESTS), "WORKER_PID_FILE": str(tmp_path / "worker.pid")}


def wait_for_pid(path: Path) -> int:
    deadline = time.time() + 60
    while time.time() < deadline:
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("the guarded step never started its worker")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_step_takes_its_forked_workers_along(tmp_path):
    step = subprocess.Popen(guarded_command("test_processes:fork_worker_and_wait"), env=environment(tmp_path))
    worker = wait_for_pid(tmp_path / "worker.pid")
    assert alive(worker)
    step.send_signal(signal.SIGKILL)
    step.wait()
    assert wait_until_ended(worker), f"worker {worker} outlived its killed parent"


def test_a_failed_step_leaves_no_process_of_its_group(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        run_logged(guarded_command("test_processes:start_program_and_fail"), environment(tmp_path))
    assert failure.value.returncode == 3
    program = wait_for_pid(tmp_path / "worker.pid")
    assert wait_until_ended(program), f"process {program} of the failed step is still running"


def test_a_step_runs_a_console_script_with_its_arguments(tmp_path, caplog):
    caplog.set_level("INFO")
    run_logged(guarded_command("snakemake", "--version"), environment(tmp_path))
    assert any(record.getMessage()[:1].isdigit() for record in caplog.records)


def test_a_steps_progress_bar_frames_stay_out_of_the_log_and_its_lines_go_in(tmp_path, caplog):
    bar = "Predicting:  50%|#####     | 1/2\rPredicting: 100%|##########| 2/2\ndone with case01\n"
    with caplog.at_level("INFO", logger="sambrats.processes"):
        run_logged([sys.executable, "-c", f"import sys; sys.stdout.write({bar!r})"], environment(tmp_path))
    logged = [record.getMessage() for record in caplog.records if not record.getMessage().startswith("running ")]
    assert logged == ["done with case01"]  # the step's line, none of its bar's frames
