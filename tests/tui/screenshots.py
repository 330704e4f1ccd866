"""Render SVG screenshots of the console's main states, deterministically.

    python -m tests.tui.screenshots [OUT_DIR]      (from the repository root; default: screenshots/)

Each scenario is shot at two sizes: the wide one as ``NAME.svg`` and the
80x24 one as ``NAME-80x24.svg``. The console runs headless against the
stand-in master of the test suite (``tests/tui/standin_master.py``: the real
gRPC protocol, a fixed fleet, scripted output, a fixed clock), so the
pictures are the same on every run. The snapshot tests drive the same
scenarios at the same sizes. This lives with the tests, not in the shipped
package: it needs the stand-in master.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.tui.standin_master import StandinServer

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from sloth_tui.app import SlothApp
    from sloth_tui.shell import ShellLauncher

WIDE = (160, 45)
NARROW = (80, 24)
SIZES = {"": WIDE, "-80x24": NARROW}
"""File-name suffix: terminal size."""
SHOWN_ADDRESS = "10.0.0.2:50053"
CLOCK = 1_750_000_010.0
"""Ten seconds after the stand-in master's fixed "now"."""

Scenario = Callable[["Pilot[int]"], Awaitable[None]]


def build_app(address: str, shell: ShellLauncher | None = None) -> SlothApp:
    """The console on a stand-in master at ``address``, with a frozen clock."""
    from sloth_core.client import MasterClient
    from sloth_tui.app import create_app

    return create_app(
        lambda: MasterClient(address, None),
        clock=lambda: CLOCK,
        target=SHOWN_ADDRESS,
        reconnect_delays=(0.2, 0.5, 1.0),
        shell=shell,
    )


async def wait_for(pilot: Pilot[int], condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds (it fails loudly otherwise)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the console did not reach the expected state within {timeout} s")
        await pilot.pause(0.02)


def _app(pilot: Pilot[int]) -> SlothApp:
    return pilot.app  # type: ignore[return-value]


async def settle(pilot: Pilot[int]) -> None:
    """Wait for the connection and the fleet, and for every pending flush."""
    app = _app(pilot)
    await wait_for(pilot, lambda: app.connection.state == "connected" and app.fleet.agents)
    await pilot.pause(0.15)


def _job_done(app: SlothApp, *, blocked: int = 0) -> bool:
    job = app.store.current_job
    if job is None:
        return False
    runs = list(app.store.job_runs(job))
    return sum(r.active for r in runs) == blocked and all(r.active or not r.detached for r in runs)


async def run_command(pilot: Pilot[int], command: str, marks: list[str]) -> None:
    """Mark ``marks`` (by name), type ``command`` at the prompt and press Enter."""
    app = _app(pilot)
    table = app.fleet_screen.table
    for name in marks:
        table.move_to(name)
        await pilot.press("space")
    await pilot.press("colon")
    app.fleet_screen.prompt.value = command  # as if typed (Pilot types ~50 ms a key)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.store.current_job is not None)


async def fleet_overview(pilot: Pilot[int]) -> None:
    """The fleet, with the last run of web-1 opened from history."""
    app = _app(pilot)
    await settle(pilot)
    app.fleet_screen.table.move_to("web-1")
    await pilot.press("enter")
    await wait_for(pilot, lambda: (r := app.store.for_agent("web-1")) is not None and not r.active and r.lines)
    await pilot.press("escape")
    await pilot.pause(0.1)


async def run_in_progress(pilot: Pilot[int]) -> None:
    """A job on four agents: one done, one failed, two still running."""
    app = _app(pilot)
    await settle(pilot)
    await run_command(pilot, "apt-get upgrade -y", ["db-1", "web-1", "web-2", "web-3"])

    def ready() -> bool:
        runs = {r.agent: r for r in app.store.job_runs(app.store.current_job)}
        return _job_done(app, blocked=2) and all(len(runs[a].lines) >= 6 for a in ("web-2", "web-3"))

    await wait_for(pilot, ready)
    await pilot.press("left_square_bracket")  # from web-3 (the cursor) to web-2
    await pilot.pause(0.1)


async def failed_run(pilot: Pilot[int]) -> None:
    """A deploy that failed on one agent: its stderr in red, the exit code, the summary."""
    app = _app(pilot)
    await settle(pilot)
    await run_command(pilot, "./deploy.sh", ["web-1", "web-2", "web-3"])
    await wait_for(pilot, lambda: _job_done(app))
    await pilot.press("n")
    await pilot.pause(0.1)


async def history(pilot: Pilot[int]) -> None:
    """web-1's run history from the master, the newest run replayed."""
    app = _app(pilot)
    await settle(pilot)
    app.fleet_screen.table.move_to("web-1")
    await pilot.press("h")
    await wait_for(pilot, lambda: (r := app.store.for_agent("web-1")) is not None and r.lines and not r.active)
    await pilot.pause(0.1)


async def help_screen(pilot: Pilot[int]) -> None:
    """``?``: every key, the ones that apply here first."""
    await settle(pilot)
    await pilot.press("question_mark")
    await pilot.pause(0.1)


async def agent_details(pilot: Pilot[int]) -> None:
    """``d`` on db-1: everything it reported, the busy figures in red."""
    app = _app(pilot)
    await settle(pilot)
    app.fleet_screen.table.move_to("db-1")
    await pilot.press("d")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "AgentDetailsScreen")
    await pilot.pause(0.1)


async def busy_agents(pilot: Pilot[int]) -> None:
    """The filter ``mem>70`` and the table sorted by memory: the agents that need a look."""
    app = _app(pilot)
    await settle(pilot)
    await pilot.press("slash")
    app.fleet_screen.query_one("#filter").value = "mem>70"  # type: ignore[attr-defined]
    await pilot.press("enter", "M")
    await wait_for(pilot, lambda: app.fleet_screen.table.order == ["db-1", "web-2"])
    await pilot.pause(0.1)


async def confirm_all(pilot: Pilot[int]) -> None:
    """Running on every agent asks first, with the exact command and count."""
    app = _app(pilot)
    await settle(pilot)
    await pilot.press("a", "colon")
    app.fleet_screen.prompt.value = "uptime"
    await pilot.press("enter")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
    await pilot.pause(0.1)


SCENARIOS: dict[str, Scenario] = {
    "fleet": fleet_overview,
    "run-in-progress": run_in_progress,
    "failed-run": failed_run,
    "history": history,
    "help": help_screen,
    "confirm": confirm_all,
    "agent-details": agent_details,
    "busy-agents": busy_agents,
}


async def _shoot(name: str, scenario: Scenario, size: tuple[int, int], path: Path) -> Path:
    with StandinServer() as server:
        app = build_app(server.address)
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()
            svg = app.export_screenshot(title=f"sloth-runner tui — {name} ({size[0]}x{size[1]})")
    path.write_text(svg, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("screenshots")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    os.environ["TZ"] = "UTC"
    time.tzset()
    out.mkdir(parents=True, exist_ok=True)
    for name, scenario in SCENARIOS.items():
        for suffix, size in SIZES.items():
            print(asyncio.run(_shoot(name, scenario, size, out / f"{name}{suffix}.svg")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
