"""Outputs: complete or absent, readable under the user's umask, no staging left behind for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from sambrats.outputs import staged_directory, write_tsv
from sambrats.slices import write_slice_dataset


@pytest.fixture
def umask():
    """Set a umask for one test and put the previous one back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                         (0o002, 0o664, 0o775)])
def test_published_files_and_folders_honour_the_umask(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "table.tsv")
    with staged_directory(tmp_path / "folder") as folder:
        (folder / "inside.txt").write_text("x")
    assert (tmp_path / "table.tsv").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == folder_mode
    assert (tmp_path / "folder/inside.txt").stat().st_mode & 0o777 == file_mode


def test_a_sigkilled_writer_leaves_staging_that_the_next_write_removes(tmp_path):
    """A real SIGKILL inside staged_directory and staged_file, then the same targets written again."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from sambrats.outputs import staged_directory, staged_file
        with staged_file(Path({str(tmp_path)!r}) / "table.tsv") as tmp:
            tmp.write_text("half")
            with staged_directory(Path({str(tmp_path)!r}) / "slices") as folder:
                (folder / "case.npz").write_bytes(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -signal.SIGKILL
    left = sorted(entry.name for entry in tmp_path.iterdir())
    assert len(left) == 2 and all(name.endswith(".part") for name in left)
    (tmp_path / ".slices.other.part").mkdir()  # another writer's staging of the same target: also stale
    (tmp_path / ".slices2.abcdefgh.part").mkdir()  # another target's staging: not ours to remove

    write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "table.tsv")
    with staged_directory(tmp_path / "slices") as folder:
        (folder / "case.npz").write_bytes(b"complete")
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [".slices2.abcdefgh.part", "slices", "table.tsv"]
    assert (tmp_path / "slices/case.npz").read_bytes() == b"complete"


def test_build_slices_after_a_kill_cleans_its_staging_folder(cohorts, tmp_path):
    from sambrats.brats import write_case_tables
    from sambrats.splits import write_split

    write_case_tables(cohorts["gli"], "gli", "brats2024", tmp_path / "cases.tsv", tmp_path / "rejected.tsv")
    write_split(tmp_path / "cases.tsv", tmp_path / "splits.tsv", {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    stale = tmp_path / ".slices.k3j4h5g6.part"
    stale.mkdir()
    (stale / "half.npz").write_bytes(b"half")
    write_slice_dataset(tmp_path / "cases.tsv", tmp_path / "splits.tsv", tmp_path / "slices", "gli", "t2f", "wt",
                        (0.5, 99.5))
    assert not stale.exists() and (tmp_path / "slices/index.tsv").is_file()
