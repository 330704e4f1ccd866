"""The live status line of a fan-out: one line at the bottom of the terminal.

``[412/1000 done · 3 failed · 585 running · 12.4 s · slowest: web-17 12.1 s]``

It lives on stderr and is redrawn in place (carriage return, erase line)
while the prefixed output scrolls above it: whoever writes a line first
calls :meth:`Progress.clear`, then :meth:`Progress.draw` once done.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from sloth_core.cli.render import duration

REDRAW_EVERY_S = 0.1
_ERASE = "\r\x1b[K"


class Progress:
    """Counts runs and draws the status line on ``stream``."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self.total = total
        self.done = 0
        self.failed = 0
        self._running: dict[str, tuple[str, float]] = {}  # run id -> (agent, local start time)
        self._started = time.monotonic()
        self._shown = False
        self._last_draw = 0.0

    def started(self, run_id: str, agent: str) -> None:
        self._running.setdefault(run_id, (agent, time.monotonic()))

    def finished(self, run_id: str, ok: bool) -> None:
        self._running.pop(run_id, None)
        self.done += 1
        self.failed += 0 if ok else 1

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        parts = [f"{self.done}/{self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{len(self._running)} running")
        parts.append(duration(now - self._started))
        if self._running:
            agent, since = min(self._running.values(), key=lambda item: item[1])
            parts.append(f"slowest: {agent} {duration(now - since)}")
        return "[" + " · ".join(parts) + "]"

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80

    def clear(self) -> None:
        if self._shown:
            self._stream.write(_ERASE)
            self._stream.flush()
            self._shown = False

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._shown and now - self._last_draw < REDRAW_EVERY_S:
            return
        self._stream.write(_ERASE + self.line(now)[: self._columns() - 1])
        self._stream.flush()
        self._shown = True
        self._last_draw = now
