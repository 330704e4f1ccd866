"""Pinned looks of the main screens at 160x45 and at 80x24: the screenshot scenarios, on the stand-in master.

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the SVGs in ``__snapshots__/`` before committing
(``python -m tests.tui.screenshots`` renders the same pictures into ``screenshots/``).
"""

from __future__ import annotations

import pytest

from tests.tui import screenshots
from tests.tui.standin_master import StandinServer

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("size", list(screenshots.SIZES.values()), ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scenario", list(screenshots.SCENARIOS))
def test_screen(scenario: str, size: tuple[int, int], snap_compare, standin: StandinServer, utc: None) -> None:
    app = screenshots.build_app(standin.address)
    assert snap_compare(app, terminal_size=size, run_before=screenshots.SCENARIOS[scenario])


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_shell_returns_to_the_screen_it_left(
    moment: str, snap_compare, standin: StandinServer, utc: None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s`` on web-2, the shell ends: the same screen, row and pane as before (both pinned, both alike)."""
    import contextlib
    import sys
    from pathlib import Path

    from sloth_tui.shell import ShellLauncher
    from tests.tui.support import screen_text, wait_for

    monkeypatch.setenv("FAKE_SHELL_LOG", str(tmp_path / "calls"))
    fake = (sys.executable, str(Path(__file__).with_name("fake_shell.py")))
    app = screenshots.build_app(standin.address, shell=ShellLauncher(standin.address, insecure=True, program=fake))
    monkeypatch.setattr(app, "suspend", contextlib.nullcontext)  # the headless driver cannot suspend

    async def scenario(pilot) -> None:  # type: ignore[no-untyped-def]
        await screenshots.fleet_overview(pilot)
        app.fleet_screen.table.move_to("web-2")
        await pilot.pause(0.1)
        if moment == "after":
            before = screen_text(app)
            await pilot.press("s")
            await wait_for(pilot, lambda: (tmp_path / "calls").exists() and app._notifications)
            app.clear_notifications()  # "The session ended." (its words: tests/tui/test_shell_key.py)
            await pilot.pause(0.1)
            assert screen_text(app) == before

    assert snap_compare(app, terminal_size=screenshots.WIDE, run_before=scenario)
