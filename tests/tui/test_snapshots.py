"""Pinned looks of the main screens: the screenshot scenarios, on the stand-in master.

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the SVGs in ``__snapshots__/`` before committing.
"""

from __future__ import annotations

import pytest

from sloth_tui import screenshots
from tests.tui.standin_master import StandinServer

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("scenario", list(screenshots.SCENARIOS))
def test_screen(scenario: str, snap_compare, standin: StandinServer, utc: None) -> None:
    app = screenshots.build_app(standin.address)
    assert snap_compare(app, terminal_size=screenshots.SIZE, run_before=screenshots.SCENARIOS[scenario])
