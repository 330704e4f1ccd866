"""Giving memory back after a burst: a big job must not leave the master fat.

A job on 10,000 agents allocates tens of MB (run records, relays, 10,000
Report calls) that are freed when it ends; glibc keeps most of it in its
heaps, so the master's RSS stays at its high-water mark. When no run is in
flight, :func:`trim_when_idle` asks glibc to return free heap pages
(``malloc_trim``); off glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

CHECK_S = 5.0


def _malloc_trim() -> Callable[[], object] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


async def trim_when_idle(busy: Callable[[], bool], activity: Callable[[], int]) -> None:
    """Trim once after each burst: when ``busy()`` is false and ``activity()`` moved since the last trim."""
    trim = _malloc_trim()
    if trim is None:
        return
    trimmed_at = activity()
    while True:
        await asyncio.sleep(CHECK_S)
        now = activity()
        if now != trimmed_at and not busy():
            trim(0)
            trimmed_at = now
