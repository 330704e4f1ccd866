"""Terminal output: colours, result boxes, relative times.

Plain ANSI rather than rich: importing rich costs ~45 ms, a third of the
`agent run` time budget, and rendering a 1,000-row table with it ~0.45 s.
"""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from typing import TextIO

GREEN, RED, YELLOW, BLUE, GREY, BOLD, RESET = "32", "31", "33", "34", "90", "1", "0"
AGENT_COLOURS = ["36", "35", "33", "32", "34", "96", "95", "93", "92", "94"]

STATUS_COLOURS = {
    "online": GREEN, "offline": RED, "stopped": YELLOW,
    "succeeded": GREEN, "failed": RED, "cancelled": YELLOW, "timed_out": RED,
    "lost": RED, "rejected": RED, "running": BLUE, "pending": GREY,
}


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def paint(text: str, code: str, stream: TextIO = sys.stdout) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if use_colour(stream) else text


def print_error(message: str) -> None:
    print(f"{paint('error:', RED + ';' + BOLD, sys.stderr)} {message}", file=sys.stderr)


def print_warning(message: str) -> None:
    print(f"{paint('warning:', YELLOW + ';' + BOLD, sys.stderr)} {message}", file=sys.stderr)


def ago(ts: float, now: float | None = None) -> str:
    if not ts:
        return "never"
    delta = max(0.0, (now or time.time()) - ts)
    if delta < 1:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return "just now"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def box(title: str, rows: list[tuple[str, str]], *, ok: bool, stream: TextIO = sys.stdout) -> str:
    """A rounded box in the sloth-runner result style, green or red."""
    colour = GREEN if ok else RED
    badge = "✔ SUCCESS" if ok else "✘ ERROR"
    label_w = max((len(k) for k, _ in rows), default=0) + 1
    lines = [paint(badge, colour + ";" + BOLD, stream)]
    plain = [badge]
    for key, value in rows:
        for i, part in enumerate(value.splitlines() or [""]):
            head = f"{key}:".ljust(label_w) if i == 0 else " " * label_w
            lines.append(f"{paint(head, BOLD, stream)} {part}")
            plain.append(f"{head} {part}")
    inner = max(_width(title) + 2, *(_width(p) for p in plain)) + 2
    edge = lambda s: paint(s, colour, stream)  # noqa: E731
    out = [edge(f"╭─ {title} " + "─" * (inner - _width(title) - 3) + "╮")]
    for text, raw in zip(lines, plain, strict=True):
        out.append(f"{edge('│')} {text}{' ' * (inner - _width(raw) - 1)}{edge('│')}")
    out.append(edge("╰" + "─" * inner + "╯"))
    return "\n".join(out)
