"""Typed values for command-line flags.

Each function is an argparse ``type=``: it turns the text into the value or
raises :class:`argparse.ArgumentTypeError`, which argparse reports as one
line naming the flag (``argument --port: …``) with exit code 2. No flag's
value reaches a handler unchecked, so none can end in a traceback.
"""

from __future__ import annotations

import argparse
import math
import re

MAX_PORT = 65535
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*")
_UNIT_S = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def port(text: str) -> int:
    """A TCP port, 0-65535; 0 asks the system for a free one."""
    value = _integer(text, "a port")
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use 1-{MAX_PORT}, or 0 for a free one")
    return value


def count(text: str) -> int:
    """A whole number of at least 1."""
    value = _integer(text, "a count")
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number of at least 1")
    return value


def count_or_zero(text: str) -> int:
    """A whole number of at least 0 (where 0 means "no limit"; the flag's help says so)."""
    value = _integer(text, "a count")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number, 0 for no limit")
    return value


def size(text: str) -> int:
    """A number of bytes, at least 1; ``K``/``M``/``G`` suffixes (powers of 1024) allowed."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?|B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number of bytes, e.g. 4096, 64K, 1M")
    unit = (match[2] or "B")[0].upper()
    value = int(match[1]) * {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use at least 1 byte")
    return value


def parse_duration(text: str) -> float | None:
    """Seconds in ``text`` (``90``, ``1.5s``, ``250ms``, ``30m``, ``2h``, ``1d``), or None if malformed."""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        return None
    value = float(match[1]) * _UNIT_S[match[2]]
    return value if math.isfinite(value) else None


def duration(text: str) -> float:
    """A positive, finite duration; bare numbers are seconds."""
    value = parse_duration(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a positive number of seconds or e.g. 500ms, 90s, 30m, 2h, 1d"
        )
    return value


def duration_or_zero(text: str) -> float:
    """A finite duration of at least 0 (where 0 means "no limit"; the flag's help says so)."""
    value = parse_duration(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number of seconds (0 for no limit) or e.g. 500ms, 90s, 30m, 2h"
        )
    return value


def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what.split()[-1]} {text!r}: expected a whole number") from None
