"""Plain-text formatting shared by the widgets: ages, durations, ids, counts."""

from __future__ import annotations

import time

from sloth_core.ids import short_ids


def ago(seconds: float) -> str:
    """A compact age: ``4s``, ``12m``, ``3h``, ``5d``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``4m 05s``, ``2h 03m``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def clock_time(ts: float) -> str:
    """Local date and time of a unix timestamp, to the second."""
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def short_time(ts: float) -> str:
    """``06-15 14:46:40``: local month-day and time, for narrow lists."""
    if not ts:
        return "—"
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def short_id(value: str) -> str:
    """A run or job id as the CLI lists it (``r-`` and 8 hex digits), so either can be typed to the other."""
    return short_ids([value])[value]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def name_list(names: list[str], limit: int = 4) -> str:
    """``web-1, web-2, db-1`` or ``web-1, web-2, web-3, web-4 +12 more``."""
    shown = ", ".join(names[:limit])
    extra = len(names) - limit
    return f"{shown} +{extra} more" if extra > 0 else shown
