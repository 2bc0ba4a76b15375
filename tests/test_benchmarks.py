"""Every benchmark runs, at a tiny size, so that none rots; the figures stay in the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import HANG_GUARD_S, REPO

BENCHMARKS = REPO / "benchmarks"
# benchmark -> (arguments of a tiny run, a line its report must print)
TINY_RUNS = {
    "slice_extraction.py": ([], "ratio"),
    "sam_prompt_modes.py": (["--tiny", "--slices", "1", "--device", "cpu"], "ratio (full / cached)"),
    "sam_click_protocol.py": (["--tiny", "--slices", "1", "--clicks", "2", "--device", "cpu", "--image-size", "64",
                               "--volume-slices", "4"], "ratio (protocol / box), 3D"),
    "medsam2_volume.py": (["--image-size", "64", "--slices", "3", "--device", "cpu"], "ratio (whole / encoder)"),
    "dry_run_paper_scale.py": (["--gli", "4", "--legacy", "4", "--repeats", "1"], "ratio paper/demo"),
    "demo_budget.py": (["--short", "--target", "results/splits/brats2024.tsv"],  # its jobs read off Snakemake's log
                       "of the 15 min budget)\n  3 jobs, "),
    "gpu_paper_scale.py": (["--tiny", "--device", "cpu", "--steps", "1"], "determinism, the same 1 LoRA steps twice: identical"),
    "numeric_portability.py": (["--steps", "1", "--size", "8"], "ratio (conv ATen / conv oneDNN)"),
}


def test_every_benchmark_is_run_here():
    assert sorted(TINY_RUNS) == sorted(path.name for path in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_benchmark_runs_at_a_tiny_size(name, tmp_path):
    """Each in its own temporary folder: the scratch a benchmark keeps for its user (the demo's
    folders and logs) goes with the test's."""
    arguments, line = TINY_RUNS[name]
    result = subprocess.run([sys.executable, str(BENCHMARKS / name), *arguments], cwd=REPO, capture_output=True,
                            text=True, timeout=HANG_GUARD_S, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert line in result.stdout, result.stdout


def test_the_demo_budget_measures_another_commit_only_on_a_fresh_clone(tmp_path):
    """`--commit` is a baseline's fresh clone: alone it is refused before any folder is made."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / "demo_budget.py"), "--commit", "HEAD~1"], cwd=REPO,
                            capture_output=True, text=True, timeout=HANG_GUARD_S, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 2 and "give --fresh-clone too" in result.stderr
    assert not list(tmp_path.iterdir())
