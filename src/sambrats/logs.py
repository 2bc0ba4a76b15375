"""Logging for workflow scripts: one log file per rule, mirrored to stderr."""

from __future__ import annotations

import logging
import sys


def setup(log_file: str | None = None, level: int = logging.INFO) -> None:
    """Send log records and a fatal error to ``log_file`` (the rule's ``log:``) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type, exc, traceback) -> None:
    """Put the error that ends a script into the rule's log, not only on the terminal."""
    logging.getLogger("sambrats").critical("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, traceback))
