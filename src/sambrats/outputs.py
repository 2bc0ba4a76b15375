"""Outputs that appear only when complete: write beside the target, then rename.

Staging names are ``.<target name>.<random>.part``; what a killed job left behind is removed the
next time the same target is written. Published files and folders get the permissions a plain
``open`` or ``mkdir`` would have given them under the user's umask (0644 / 0755 under 022), not
the private 0600 / 0700 of temporary files.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

STAGING_SUFFIX = ".part"


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_staging(target: Path) -> None:
    """Delete staging files and folders of ``target`` left behind by a killed job."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[A-Za-z0-9_]+{re.escape(STAGING_SUFFIX)}$")
    for entry in target.parent.iterdir():
        if pattern.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def publish_mode(path: Path, mode: int) -> None:
    """Give ``path`` the permission bits ``mode`` less the umask."""
    os.chmod(path, mode & ~current_umask())


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish_mode(Path(tmp), 0o666)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent))
    try:
        yield tmp
        publish_mode(tmp, 0o777)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_tsv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a tab-separated table atomically."""
    with staged_file(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_tsv` (empty strings stay empty strings)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[])
