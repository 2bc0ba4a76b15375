"""A real single-node SLURM cluster for the SLURM integration test (Debian's slurm 22.05 + munge).

Partitions and the GPU model match ``profiles/slurm/config.yaml`` (``standard``, ``gpu``, ``a100``), so
the test runs the profile exactly as a user does. The GPU is a GRES whose device file is a symlink to
/dev/null. Only the daemons started here are stopped, by the PIDs in their PID files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SLURM_TOOLS = {"slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "munged": "munge"}
SLURM_ETC = Path("/etc/slurm")  # the jobstep drops SLURM_CONF before its inner srun: keep the default place
PARTITIONS = ("standard", "gpu")
GPU_MODEL = "a100"
NODE_CPUS, NODE_MEMORY_MB = 16, 65536


class PackagesUnavailable(Exception):
    """Debian packages a test needs are missing and cannot be installed here (not root, no apt)."""


def install_debian_packages(tools: dict[str, str]) -> None:
    """Install the Debian package of each missing tool ({tool: package}); root and apt-get needed."""
    missing = sorted({package for tool, package in tools.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise PackagesUnavailable(f"{', '.join(missing)} not installed and installing needs root")
    if not shutil.which("apt-get"):
        raise PackagesUnavailable(f"{', '.join(missing)} not installed and apt-get is not available")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def install_debian_packages_or_skip(tools: dict[str, str], what: str) -> None:
    """:func:`install_debian_packages`, or skip the calling test, naming ``what`` is missing and why."""
    import pytest

    try:
        install_debian_packages(tools)
    except PackagesUnavailable as reason:
        pytest.skip(f"{what} is not available: {reason}")


def slurm_conf(state: Path, host: str, cpus: int, memory_mb: int) -> str:
    """slurm.conf of one node that claims ``cpus`` and ``memory_mb`` (config_overrides: more than it has,
    like a small GPU node, so the rules' real requests fit; nothing enforces them with task/none)."""
    nodes = f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{GPU_MODEL}:1 State=UNKNOWN"
    partitions = "\n".join(
        f"PartitionName={name} Nodes=ALL Default={'YES' if name == PARTITIONS[0] else 'NO'} MaxTime=INFINITE State=UP"
        for name in PARTITIONS
    )
    return f"""ClusterName=sambratstest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={state}/munge/munge.socket
StateSaveLocation={state}/spool/slurmctld
SlurmdSpoolDir={state}/spool/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=3600
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
{nodes}
{partitions}
"""


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop`; the config files it replaces are restored."""

    def __init__(self, state: Path):
        self.state = state
        self.host = socket.gethostname().split(".")[0]
        self.pid_files: list[Path] = []
        self.saved: dict[Path, bytes | None] = {}

    def _write_etc(self, name: str, text: str) -> None:
        path = SLURM_ETC / name
        self.saved.setdefault(path, path.read_bytes() if path.exists() else None)
        path.write_text(text)

    def _start(self, command: list[str], pid_file: Path) -> None:
        subprocess.run(command, check=True)
        self.pid_files.append(pid_file)

    def start(self) -> None:
        install_debian_packages(SLURM_TOOLS)
        for folder in ("spool/slurmctld", "spool/slurmd", "fake-gpu", "munge"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        gpu_device = self.state / "fake-gpu" / "gpu0"
        gpu_device.symlink_to("/dev/null")  # a GRES needs a device file; a regular one leaves CUDA_VISIBLE_DEVICES unset
        SLURM_ETC.mkdir(exist_ok=True)
        self._write_etc("slurm.conf", slurm_conf(self.state, self.host, NODE_CPUS, NODE_MEMORY_MB))
        self._write_etc("gres.conf", f"AutoDetect=off\nNodeName={self.host} Name=gpu Type={GPU_MODEL} File={gpu_device}\n")
        self._start_munge()
        self._start(["slurmctld"], self.state / "slurmctld.pid")
        self._start(["slurmd"], self.state / "slurmd.pid")
        self._wait_idle()

    def _start_munge(self) -> None:
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["mungekey", "--create"], check=True)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
        shutil.chown(self.state / "munge", "munge", "munge")
        folder = self.state / "munge"
        self._start(["runuser", "-u", "munge", "--", "munged", f"--socket={folder}/munge.socket",
                     f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                     f"--seed-file={folder}/munged.seed"], folder / "munged.pid")

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True).stdout.split()
            if state and all(s == "idle" for s in state):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM node did not become idle in {timeout} s: {state}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.state.glob("*.log")) if log.exists()
        )

    def jobs(self) -> list[dict[str, str]]:
        """Every job this cluster knows (finished ones stay for MinJobAge): id, name, partition, state, TRES."""
        fields = ("JobId", "JobName", "Partition", "JobState", "TRES", "TresPerJob", "Comment")
        out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True).stdout
        jobs = []
        for line in out.splitlines():
            pairs = dict(item.split("=", 1) for item in line.split() if "=" in item)
            jobs.append({field: pairs.get(field, "") for field in fields})
        return jobs

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True)
        for pid_file in reversed(self.pid_files):
            try:
                pid = int(pid_file.read_text())
            except (FileNotFoundError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for path, content in self.saved.items():
            path.unlink(missing_ok=True)
            if content is not None:
                path.write_bytes(content)
