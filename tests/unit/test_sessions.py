"""Agents' sessions without gRPC: liveness at scale, and runs over a session."""

from __future__ import annotations

import asyncio

import pytest

from sloth_core import errors
from sloth_core.master.registry import (
    BEATS_PER_S,
    BUSY_BEAT_S,
    BUSY_BEATS_PER_S,
    MISSED_BEATS_OFFLINE,
    STALL_GRACE_S,
    Registry,
)
from sloth_core.master.sessions import SessionHub
from sloth_core.proto import sloth_pb2 as pb
from tests.unit.conftest import HEARTBEAT_S, register
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.timeout(5)


def beat(registry: Registry, name: str) -> None:
    registry.heartbeat(pb.HeartbeatRequest(name=name, instance_id=f"{name}-1"))


def status(registry: Registry, name: str) -> int:
    return registry.info(name).status


# ---------------------------------------------------------------- liveness


def test_idle_beats_slow_down_as_the_fleet_grows(registry: Registry) -> None:
    register(registry, "a-0")
    assert registry.pace_for("a-0") == HEARTBEAT_S
    for i in range(1, 1000):
        register(registry, f"a-{i}")
    assert registry.pace_for("a-0") == pytest.approx(1000 / BEATS_PER_S)


def test_an_agent_given_a_slow_pace_is_not_offline_for_missing_fast_beats(registry: Registry, clock: FakeClock) -> None:
    for i in range(1000):
        register(registry, f"a-{i}")
    pace = registry.pace_for("a-1")
    clock.advance(3 * HEARTBEAT_S + 1)
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_ONLINE
    clock.advance(3 * pace)
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_OFFLINE


def test_an_ended_session_is_offline_at_once(registry: Registry) -> None:
    register(registry, "web-1")
    registry.disconnected("web-1", "web-1-1")
    assert status(registry, "web-1") == pb.AGENT_OFFLINE


def test_an_old_instance_ending_its_session_leaves_the_new_one_online(registry: Registry) -> None:
    register(registry, "web-1", instance="web-1-2")
    registry.disconnected("web-1", "web-1-1")
    assert status(registry, "web-1") == pb.AGENT_ONLINE


def test_a_silent_agent_is_offline_and_its_session_is_cut(registry: Registry, clock: FakeClock) -> None:
    gone: list[str] = []
    registry._on_unresponsive = gone.append
    register(registry, "web-1")
    clock.advance(MISSED_BEATS_OFFLINE * HEARTBEAT_S + 1)
    registry.sweep()
    assert status(registry, "web-1") == pb.AGENT_OFFLINE and gone == ["web-1"]


def test_a_stalled_master_holds_no_silence_against_agents(registry: Registry, clock: FakeClock) -> None:
    register(registry, "web-1")
    silence = MISSED_BEATS_OFFLINE * HEARTBEAT_S + 5
    clock.advance(silence)  # the master itself could not read beats meanwhile
    registry.stalled(silence)
    registry.sweep()
    assert status(registry, "web-1") == pb.AGENT_ONLINE
    beat(registry, "web-1")  # the queued beats arrive once it recovers
    clock.advance(STALL_GRACE_S + silence + 1)
    registry.sweep()
    assert status(registry, "web-1") == pb.AGENT_OFFLINE


# ---------------------------------------------------------------- runs over a session


def test_an_agent_with_runs_in_flight_is_judged_by_its_busy_beats(registry: Registry, clock: FakeClock) -> None:
    for i in range(1000):
        register(registry, f"a-{i}")
    idle_pace = registry.pace_for("a-1")  # 33 s: an idle agent may be silent for 100 s
    clock.advance(idle_pace)  # its last beat is long ago, and that is fine
    busy_pace = registry.asked("a-1")
    assert busy_pace == min(HEARTBEAT_S, BUSY_BEAT_S)
    clock.advance(MISSED_BEATS_OFFLINE * busy_pace - 0.5)  # silence counts from the request, not the old beat
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_ONLINE
    beat(registry, "a-1")  # busy beats keep it online
    clock.advance(MISSED_BEATS_OFFLINE * busy_pace - 0.5)
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_ONLINE
    clock.advance(1.0)  # frozen mid-run: three busy beats missed
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_OFFLINE


def test_an_agent_that_answered_its_runs_goes_back_to_its_idle_allowance(registry: Registry, clock: FakeClock) -> None:
    for i in range(1000):
        register(registry, f"a-{i}")
    registry.pace_for("a-1")
    registry.asked("a-1")
    registry.asked("a-1")
    registry.answered("a-1")
    registry.answered("a-1")
    clock.advance(MISSED_BEATS_OFFLINE * BUSY_BEAT_S + 1)
    registry.sweep()
    assert status(registry, "a-1") == pb.AGENT_ONLINE


def test_busy_beats_slow_down_as_more_agents_are_busy(registry: Registry) -> None:
    for i in range(2000):
        register(registry, f"a-{i}")
    assert registry.asked("a-0") == min(HEARTBEAT_S, BUSY_BEAT_S)
    for i in range(2000):  # a job on all of them: every run counts before the first is asked
        registry.run_started(f"a-{i}")
    paces = [registry.asked(f"a-{i}") for i in range(1, 2000)]
    assert paces[0] == paces[-1] == pytest.approx(2000 / BUSY_BEATS_PER_S)


def agent_record(registry: Registry, name: str):  # type: ignore[no-untyped-def]
    rec = registry.get(name)
    assert rec is not None
    return rec


async def test_a_run_goes_down_the_session_and_its_events_come_back(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    run = hub.execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="true"))
    sent = session.outbox.get_nowait()
    assert sent is not None and sent.execute.run_id == "r-1"
    assert hub.agent_of("r-1") == "web-1"
    reported = hub.attach("web-1", "r-1")
    await reported.deliver(pb.ExecuteEvent(started=pb.ExecStarted(pid=1)))
    await reported.deliver(pb.ExecuteEvent(exit=pb.ExecExit(status=pb.RUN_SUCCEEDED)))
    kinds = [e.WhichOneof("kind") async for e in run]
    assert kinds == ["started", "exit"]
    reported.reported_all()
    with pytest.raises(errors.RunNotFoundError):
        hub.agent_of("r-1")


def whole(run_id: str, *events: pb.ExecuteEvent) -> pb.RunDone:
    return pb.RunDone(run_id=run_id, events=list(events))


STARTED = pb.ExecuteEvent(started=pb.ExecStarted(pid=1))
OUTPUT = pb.ExecuteEvent(output=pb.OutputChunk(stream=pb.STDOUT, data=b"hi\n", seq=1))
EXIT = pb.ExecuteEvent(exit=pb.ExecExit(status=pb.RUN_SUCCEEDED))


async def test_a_short_run_reported_whole_on_the_session_needs_no_report_call(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    run = hub.execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="echo hi"))
    hub.done(session, whole("r-1", STARTED, OUTPUT, EXIT))
    assert [e.WhichOneof("kind") async for e in run] == ["started", "output", "exit"]
    with pytest.raises(errors.RunNotFoundError):
        hub.attach("web-1", "r-1")  # reported: no call may report it again
    hub.done(session, whole("r-1", STARTED, EXIT))  # again, or a run never asked: ignored
    hub.done(session, whole("r-404", STARTED, EXIT))


async def test_a_start_reported_on_the_session_comes_first_then_the_rest_whole_or_on_a_call(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    record = agent_record(registry, "web-1")
    quick = hub.execute(record, pb.ExecuteRequest(run_id="r-1", command="echo hi"))
    hub.started(session, pb.RunReport(run_id="r-1", event=STARTED))
    hub.started(session, pb.RunReport(run_id="r-1", event=STARTED))  # once is enough
    hub.done(session, whole("r-1", OUTPUT, EXIT))
    assert [e.WhichOneof("kind") async for e in quick] == ["started", "output", "exit"]
    slow = hub.execute(record, pb.ExecuteRequest(run_id="r-2", command="echo hi; sleep 9"))
    hub.started(session, pb.RunReport(run_id="r-2", event=STARTED))
    reported = hub.attach("web-1", "r-2")
    await reported.deliver(OUTPUT)
    await reported.deliver(EXIT)
    assert [e.WhichOneof("kind") async for e in slow] == ["started", "output", "exit"]


async def test_a_whole_run_without_an_exit_or_too_many_events_is_lost_not_hung(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    record = agent_record(registry, "web-1")
    for run_id, events in (("r-1", [STARTED, OUTPUT]), ("r-2", [STARTED] + [OUTPUT] * 100 + [EXIT])):
        run = hub.execute(record, pb.ExecuteRequest(run_id=run_id, command="true"))
        hub.done(session, whole(run_id, *events))
        with pytest.raises(errors.AgentUnreachableError, match="without an exit status"):
            await asyncio.wait_for(anext(aiter(run)), 1)


async def test_a_cancelled_run_ignores_a_late_whole_report(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    run = hub.execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="true"))
    assert run.cancel()
    hub.done(session, whole("r-1", STARTED, EXIT))
    with pytest.raises(errors.CallCancelledError):
        async for _ in run:
            pass


async def test_a_session_ending_mid_run_loses_the_run(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    session = hub.open("web-1", "web-1-1", None)
    run = hub.execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="sleep 9"))
    await hub.attach("web-1", "r-1").deliver(pb.ExecuteEvent(started=pb.ExecStarted(pid=1)))
    hub.ended(session, "its socket closed")
    with pytest.raises(errors.AgentUnreachableError, match="lost contact with agent 'web-1' mid-run"):
        async for _ in run:
            pass


async def test_hanging_up_a_reported_run_ends_its_call(registry: Registry) -> None:
    register(registry, "web-1")
    hub = SessionHub()
    hub.open("web-1", "web-1-1", None)
    run = hub.execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="sleep 9"))
    reported = hub.attach("web-1", "r-1")
    assert run.cancel()
    assert reported.reporter is not None and reported.reporter.done()  # the Report call is told to end
    with pytest.raises(errors.CallCancelledError):
        async for _ in run:
            pass


async def test_an_agent_without_a_session_is_unreachable(registry: Registry) -> None:
    register(registry, "web-1")
    run = SessionHub().execute(agent_record(registry, "web-1"), pb.ExecuteRequest(run_id="r-1", command="true"))
    with pytest.raises(errors.AgentUnreachableError):
        await asyncio.wait_for(anext(aiter(run)), 1)


async def test_a_new_session_replaces_the_old_one_and_ends_it(registry: Registry) -> None:
    hub = SessionHub()
    old = hub.open("web-1", "web-1-1", None)
    hub.open("web-1", "web-1-2", None)
    assert old.outbox.get_nowait() is None  # the old stream is told to end
    assert hub.connected("web-1", "web-1-2") and not hub.connected("web-1", "web-1-1")
