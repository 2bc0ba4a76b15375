"""Logging for workflow scripts: one log file per rule, mirrored to stderr."""

from __future__ import annotations

import json
import logging
import sys

from .numerics import numeric_path

# The line that records a job's numeric path; provenance gathers the last one of each rule log.
NUMERIC_RECORD = "numeric path: "


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
    log_numeric_path()


def log_numeric_path() -> None:
    """Log the numeric path this job computes on (see ``sambrats.numerics``)."""
    logging.getLogger("sambrats").info("%s%s", NUMERIC_RECORD, json.dumps(numeric_path(), sort_keys=True))


def _log_uncaught(exc_type, exc, traceback) -> None:
    """Put the error that ends a script into the rule's log, not only on the terminal."""
    logging.getLogger("sambrats").critical("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, traceback))
