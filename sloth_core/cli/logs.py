"""Logging for the long-running processes (master, agent).

In the foreground, lines go to stderr; a daemon writes them to its log file,
which rotates by size so that a master running for months cannot fill the
disk: ``master.log`` plus ``master.log.1`` … ``.3`` (the standard library's
handler).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from sloth_core.escape import EscapingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates by size; every file it creates is the owner's only (logs name every command run)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # an older, wider file too
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def setup(level: str = "INFO", *, log_file: str | Path | None = None, max_bytes: int = MAX_BYTES) -> None:
    """Send log lines to ``log_file`` (rotating) or stderr; calling it again replaces, never adds."""
    handler: logging.Handler
    if log_file:
        handler = PrivateRotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=BACKUPS, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    # Agents and commands supply much of what is logged: one record, one line.
    handler.addFilter(EscapingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
