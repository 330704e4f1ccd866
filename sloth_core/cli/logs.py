"""Logging for the long-running processes (master, agent)."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO") -> None:
    from sloth_core.escape import EscapingFilter

    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # Agents and commands supply much of what is logged: one record, one line.
    for handler in logging.getLogger().handlers:
        handler.addFilter(EscapingFilter())
