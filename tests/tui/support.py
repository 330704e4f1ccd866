"""Helpers shared by the console's tests."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

from rich.cells import cell_len
from textual.pilot import Pilot

from sloth_core.client import MasterClient
from sloth_tui.app import SlothApp, create_app
from tests.tui.screenshots import CLOCK, wait_for

__all__ = ["CLOCK", "console", "footer_text", "screen_text", "settle", "shows", "wait_for"]

# One <text> element of Textual's SVG screenshot: its x, its line, its text.
_SVG_TEXT = re.compile(r'<text [^>]*?x="([\d.]+)"[^>]*?clip-path="url\(#[^)]*-line-(\d+)\)"[^>]*>(.*?)</text>')
_CHAR_WIDTH = 12.2
"""Width of a cell in rich's SVG export (``char_height`` 20 times aspect 0.61)."""


def console(address: str, *, history_path: Path | None = None, clock: Callable[[], float] | None = None,
            confirm_over: int = 5, tls: object = None, **options: object) -> SlothApp:
    """A console on the master at ``address`` (plaintext unless ``tls``), quick to reconnect."""
    return create_app(
        lambda: MasterClient(address, tls),  # type: ignore[arg-type]
        clock=clock or (lambda: CLOCK),
        history_path=history_path,
        confirm_over=confirm_over,
        reconnect_delays=options.pop("reconnect_delays", (0.1, 0.2, 0.4)),  # type: ignore[arg-type]
        target=address,
        **options,  # type: ignore[arg-type]
    )


def screen_text(app: SlothApp) -> str:
    """What the terminal shows now, as plain text, one line per row.

    Read from the app's public screenshot (an SVG): each text run sits at a
    cell column on a row, so the rows can be put back together exactly.
    """
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, line, text in _SVG_TEXT.findall(app.export_screenshot()):
        row = int(line)
        if row >= height:
            continue
        col = round(float(x) / _CHAR_WIDTH)
        for char in html.unescape(text).replace("\u00a0", " "):
            if 0 <= col < width:
                rows[row][col] = char
            col += cell_len(char) or 1
    return "\n".join("".join(row).rstrip() for row in rows)


def footer_text(app: SlothApp) -> str:
    """The bottom line: the keys the footer offers."""
    return screen_text(app).split("\n")[-1]


async def settle(pilot: Pilot[int], timeout: float = 10.0) -> None:
    """Wait until the console is connected and has the fleet."""
    app: SlothApp = pilot.app  # type: ignore[assignment]
    await wait_for(pilot, lambda: app.connection.state == "connected" and app.fleet.agents, timeout)
    await pilot.pause(0.05)


async def shows(pilot: Pilot[int], text: str, timeout: float = 10.0) -> None:
    """Wait until ``text`` is on the screen (a change is drawn a frame after it is made)."""
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout)  # type: ignore[arg-type]
