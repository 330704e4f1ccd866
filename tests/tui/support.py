"""Helpers shared by the console's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from sloth_core.client import MasterClient
from sloth_tui.app import SlothApp, create_app
from sloth_tui.screenshots import CLOCK, wait_for

__all__ = ["CLOCK", "console", "screen_text", "settle", "shows", "wait_for"]


def console(address: str, *, history_path: Path | None = None, clock: Callable[[], float] | None = None,
            confirm_over: int = 5, tls: object = None) -> SlothApp:
    """A console on the master at ``address`` (plaintext unless ``tls``), quick to reconnect."""
    return create_app(
        lambda: MasterClient(address, tls),  # type: ignore[arg-type]
        clock=clock or (lambda: CLOCK),
        history_path=history_path,
        confirm_over=confirm_over,
        reconnect_delays=(0.1, 0.2, 0.4),
        target=address,
    )


def screen_text(app: SlothApp) -> str:
    """What the terminal shows now, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def settle(pilot: Pilot[int], timeout: float = 10.0) -> None:
    """Wait until the console is connected and has the fleet."""
    app: SlothApp = pilot.app  # type: ignore[assignment]
    await wait_for(pilot, lambda: app.connection.state == "connected" and app.fleet.agents, timeout)
    await pilot.pause(0.05)


async def shows(pilot: Pilot[int], text: str, timeout: float = 10.0) -> None:
    """Wait until ``text`` is on the screen (a change is drawn a frame after it is made)."""
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout)  # type: ignore[arg-type]
