"""The agent's session: how long it waits between attempts to reach its master."""

from __future__ import annotations

import pytest

from sloth_core.agent.runs import RunTable
from sloth_core.agent.session import BACKOFF_MAX_S, AgentProfile, MasterSession
from sloth_core.master.registry import BEATS_PER_S


@pytest.mark.parametrize(
    ("pace_s", "cap_s"),
    [(5.0, BACKOFF_MAX_S), (1_000 / BEATS_PER_S, 5.0), (10_000 / BEATS_PER_S, 50.0), (10_000.0, 60.0)],
    ids=["small fleet", "1,000 agents", "10,000 agents", "ceiling"],
)
async def test_the_reconnect_backoff_grows_with_the_fleet_the_master_paces(
    pace_s: float, cap_s: float
) -> None:
    session = MasterSession("127.0.0.1:1", None, AgentProfile("a1", "", "a1-1"), RunTable("a1"), lambda: None)
    try:
        session.interval_s = pace_s  # what the master's pace message set
        assert session.backoff_cap_s() == pytest.approx(cap_s)
    finally:
        await session.close()
