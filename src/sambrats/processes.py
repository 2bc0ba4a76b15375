"""Child processes that end with the job: no worker outlives a killed or failed step.

A long step (nnU-Net planning, training, prediction) runs as ``python -m sambrats.processes``
in its own process group. It and every process it forks get the kernel's parent-death signal,
so killing any of them (SIGKILL included) takes its workers with it, and :func:`run_logged`
ends the whole group whatever way the step ended.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from importlib import import_module
from importlib.metadata import entry_points

from .numerics import pin_torch_kernels

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent ended before the request took effect
        os._exit(1)


def guard_children() -> None:
    """This process and every process forked from it from now on die with their parents."""
    die_with_parent()
    os.register_at_fork(after_in_child=die_with_parent)


def end_group(pgid: int) -> None:
    """SIGKILL what is left of a process group (nothing happens when it is already gone)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def guarded_command(target: str, *args: str) -> list[str]:
    """The command that runs ``target`` (a console script or ``module:function``) under the guard."""
    return [sys.executable, "-m", "sambrats.processes", target, *args]


def run_logged(command: list[str], env: dict[str, str]) -> None:
    """Run a step in its own process group, its output line by line into our log; when it ends
    (or we are told to stop), end what is left of its group."""
    log.info("running %s", " ".join(command))
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             process_group=0)
    # A reader thread: a process left in the group may hold the pipe open after the step ended.
    reader = threading.Thread(target=_log_lines, args=(child.stdout,), daemon=True)
    reader.start()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        end_group(child.pid)
        child.wait()
        reader.join()
        child.stdout.close()
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)


# A frame of a tqdm progress bar ("Predicting:  40%|####      | 2/5 [...]"): a step's bar redraws
# itself with carriage returns, which the pipe splits into lines; its frames stay out of the log.
PROGRESS_FRAME = re.compile(r"\d+%\|")


def _log_lines(stream) -> None:
    for line in stream:
        if line.strip() and not PROGRESS_FRAME.search(line):
            log.info("%s", line.rstrip())


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def resolve(target: str):
    """A console script's function, or ``module:function``."""
    if ":" not in target:
        (script,) = entry_points(group="console_scripts", name=target)
        target = script.value
    module, function = target.split(":")
    return getattr(import_module(module), function)


def main() -> None:
    target, *args = sys.argv[1:]
    guard_children()
    pin_torch_kernels()
    sys.argv = [target, *args]
    result = resolve(target)()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
