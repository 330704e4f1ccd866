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
