"""The agent's run table: typed refusals, cancel by id."""

from __future__ import annotations

import pytest

from sloth_core import errors
from sloth_core.agent.runs import RunTable
from sloth_core.proto import sloth_pb2 as pb

pytestmark = pytest.mark.timeout(5)


async def test_an_empty_command_is_refused() -> None:
    with pytest.raises(errors.UsageError):
        RunTable("a1").start("r-1", "   ", 0)


async def test_a_run_id_in_flight_is_refused_and_cancel_ends_it() -> None:
    runs = RunTable("a1")
    events = runs.start("r-1", "sleep 30", 0)
    assert (await anext(events)).HasField("started")
    with pytest.raises(errors.RunExistsError):
        runs.start("r-1", "true", 0)
    assert runs.running == 1
    assert runs.cancel("r-1") and not runs.cancel("r-2")
    outcome = [e async for e in events][-1]
    assert outcome.exit.status == pb.RUN_CANCELLED
    assert runs.running == 0


async def test_the_command_knows_its_agent_and_run() -> None:
    events = RunTable("a1").start("r-7", 'printf "$SLOTH_AGENT $SLOTH_RUN_ID"', 0)
    out = b"".join([e.output.data async for e in events if e.HasField("output")])
    assert out == b"a1 r-7"
