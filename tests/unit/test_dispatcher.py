"""The dispatcher: fan-out of a job to agents, cancel, lost agents, stop and delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sloth_core import errors
from sloth_core.harness import wait_until
from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import EventBus
from sloth_core.master.history import RunHistory
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord
from tests.unit.conftest import register
from tests.unit.fakes import FakeAgentLink, FakeCall, FakeClock, MemoryStorage

pytestmark = pytest.mark.timeout(5)


def request(*names: str, command: str = "echo hi") -> pb.RunRequest:
    return pb.RunRequest(target=pb.Target(names=list(names)), command=command)


class Stream:
    """A caller of ``Run``: reads the job's events in the background."""

    def __init__(self, events: AsyncIterator[pb.RunEvent]) -> None:
        self.events: list[pb.RunEvent] = []
        self._source = events
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for event in self._source:
            self.events.append(event)

    async def finished(self) -> dict[str, pb.RunInfo]:
        await asyncio.wait_for(self.task, 2)
        return {e.agent: e.finished for e in self.events if e.HasField("finished")}

    def kinds(self, agent: str) -> list[str]:
        return [str(e.WhichOneof("kind")) for e in self.events if e.agent == agent]


@pytest.fixture
def two(registry: Registry) -> Registry:
    register(registry, "a1")
    register(registry, "a2")
    return registry


async def test_a_job_fans_out_and_each_run_reports_its_own_outcome(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink, storage: MemoryStorage
) -> None:
    stream = Stream(dispatcher.run(request("a1", "a2"), "admin:test"))
    calls = await link.wait_calls(2)
    assert {c.request.command for c in calls.values()} == {"echo hi"}
    calls["a1"].start()
    calls["a1"].output(b"hi\n", 1)
    calls["a1"].exit(pb.RUN_SUCCEEDED, 0)
    calls["a2"].start()
    calls["a2"].output(b"oops\n", 1, pb.STDERR)
    calls["a2"].exit(pb.RUN_FAILED, 3)
    finished = await stream.finished()
    assert {name: (f.status, f.exit_code) for name, f in finished.items()} == {
        "a1": (pb.RUN_SUCCEEDED, 0),
        "a2": (pb.RUN_FAILED, 3),
    }
    assert stream.events[0].HasField("job") and len(stream.events[0].job.runs) == 2
    assert stream.kinds("a1") == ["started", "output", "finished"]
    assert [e.output.data for e in stream.events if e.HasField("output") and e.agent == "a2"] == [b"oops\n"]
    stored = {r.agent: r for r in storage.runs.values()}
    assert stored["a1"].status == pb.RUN_SUCCEEDED and stored["a1"].stdout_bytes == 3
    assert stored["a2"].stderr_bytes == 5 and stored["a1"].requested_by == "admin:test"
    assert two.info("a1").running == 0


async def test_unknown_and_offline_targets_are_rejected_without_a_call(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink
) -> None:
    two.mark_stopped("a2")
    stream = Stream(dispatcher.run(request("a2", "nobody"), "admin:test"))
    await stream.finished()
    [job] = stream.events  # the job says it all: nothing ran
    runs = {r.agent: r for r in job.job.runs}
    assert {name: r.status for name, r in runs.items()} == {"a2": pb.RUN_REJECTED, "nobody": pb.RUN_REJECTED}
    assert runs["a2"].error == "agent 'a2' is stopped"
    assert "unknown agent 'nobody'" in runs["nobody"].error
    assert link.calls == {}


async def test_a_target_that_matches_nothing_is_an_error(dispatcher: Dispatcher) -> None:
    with pytest.raises(errors.AgentNotFoundError):
        dispatcher.start_job(request("web-*"), "admin:test")
    with pytest.raises(errors.UsageError):
        dispatcher.start_job(request("a1", command="  "), "admin:test")


async def test_cancel_reaches_the_agent_and_the_run_ends_cancelled(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink, history: RunHistory
) -> None:
    stream = Stream(dispatcher.run(request("a1", "a2"), "admin:test"))
    calls = await link.wait_calls(2)
    for call in calls.values():
        call.start()
    await wait_until(lambda: len([e for e in stream.events if e.HasField("started")]) == 2, 1, "both runs to start", 0)
    job_id = stream.events[0].job_id
    assert sorted(await history.cancel(job_id)) == sorted(r.run_id for r in stream.events[0].job.runs)
    finished = await stream.finished()
    assert {f.status for f in finished.values()} == {pb.RUN_CANCELLED}
    assert sorted(link.cancelled) == sorted(r.run_id for r in stream.events[0].job.runs)


async def test_a_caller_that_hangs_up_cancels_its_runs(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink, storage: MemoryStorage
) -> None:
    events = dispatcher.run(request("a1"), "admin:test")
    job = await anext(events)
    (await link.wait_calls(1))["a1"].start()
    assert (await anext(events)).HasField("started")
    await events.aclose()  # Ctrl-C
    run_id = job.job.runs[0].run_id
    await wait_until(lambda: storage.runs[run_id].status == pb.RUN_CANCELLED, 1, "the run to end cancelled", 0)
    assert storage.runs[run_id].status == pb.RUN_CANCELLED
    assert link.cancelled == [run_id]


async def test_an_agent_lost_mid_run_leaves_the_run_lost(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink
) -> None:
    stream = Stream(dispatcher.run(request("a1"), "admin:test"))
    call = (await link.wait_calls(1))["a1"]
    call.start()
    call.output(b"partial", 1)
    call.fail(errors.AgentUnreachableError("could not reach agent 'a1': connection reset"))
    finished = await stream.finished()
    assert finished["a1"].status == pb.RUN_LOST
    assert finished["a1"].error.startswith("lost contact with agent 'a1' at 127.0.0.1:")


async def test_an_agent_unreachable_before_the_start_says_so(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink
) -> None:
    link.unreachable.add("a1")
    finished = await Stream(dispatcher.run(request("a1"), "admin:test")).finished()
    assert finished["a1"].status == pb.RUN_LOST
    assert finished["a1"].error.startswith("could not reach agent 'a1'")


def windowed(
    registry: Registry, storage: MemoryStorage, bus: EventBus, link: FakeAgentLink, clock: FakeClock,
    *, agents: int, window: int,
) -> Dispatcher:
    """Agents w0, w1, ... and a dispatcher that asks at most ``window`` of them at a time."""
    for i in range(agents):
        register(registry, f"w{i}")
    return Dispatcher(registry, storage, bus, link, output_cap=1024, runs_per_agent=100, clock=clock,
                      start_window=window)


async def test_a_fan_out_asks_agents_through_a_window_and_each_answer_lets_the_next_in(
    registry: Registry, storage: MemoryStorage, bus: EventBus, link: FakeAgentLink, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatcher = windowed(registry, storage, bus, link, clock, agents=6, window=3)
    link.unreachable.add("w0")  # fails at once: its place goes to the next run without an answer
    unanswered: set[str] = set()
    peak = 0
    execute = link.execute

    def asked(agent: AgentRecord, req: pb.ExecuteRequest) -> FakeCall:
        nonlocal peak
        if agent.name not in link.unreachable:
            unanswered.add(agent.name)
            peak = max(peak, len(unanswered))
        return execute(agent, req)

    def start(name: str) -> None:
        unanswered.discard(name)
        link.calls[name].start()

    monkeypatch.setattr(link, "execute", asked)
    stream = Stream(dispatcher.run(pb.RunRequest(target=pb.Target(all=True), command="true"), "admin:test"))
    await link.wait_calls(4)  # w0 failed; three wait for an answer
    start("w1")  # started: the next may be asked; the run itself goes on
    await link.wait_calls(5)
    start("w2")
    link.calls["w2"].exit(pb.RUN_SUCCEEDED, 0)
    await link.wait_calls(6)
    for name in ("w3", "w4", "w5"):
        start(name)
    for name in ("w1", "w3", "w4", "w5"):
        link.calls[name].exit(pb.RUN_SUCCEEDED, 0)
    finished = await stream.finished()
    assert peak == 3  # never more agents asked and not yet answering than the window
    assert finished["w0"].status == pb.RUN_LOST
    assert [finished[f"w{i}"].status for i in range(1, 6)] == [pb.RUN_SUCCEEDED] * 5


async def test_runs_waiting_for_the_window_are_cancelled_without_reaching_their_agents(
    registry: Registry, storage: MemoryStorage, bus: EventBus, link: FakeAgentLink, clock: FakeClock
) -> None:
    dispatcher = windowed(registry, storage, bus, link, clock, agents=4, window=1)
    events = dispatcher.run(pb.RunRequest(target=pb.Target(all=True), command="sleep 9"), "admin:test")
    job = await anext(events)
    await link.wait_calls(1)
    await events.aclose()  # Ctrl-C while three runs wait for the window
    ids = [r.run_id for r in job.job.runs]
    await wait_until(lambda: all(storage.runs[i].status == pb.RUN_CANCELLED for i in ids), 1, "all cancelled", 0)
    assert list(link.calls) == ["w0"]


async def test_live_runs_are_found_live_and_finished_ones_in_storage(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink, history: RunHistory
) -> None:
    stream = Stream(dispatcher.run(request("a1"), "admin:test"))
    call = (await link.wait_calls(1))["a1"]
    call.start()
    await wait_until(lambda: any(e.HasField("started") for e in stream.events), 1, "the run to start", 0)
    run_id = stream.events[0].job.runs[0].run_id
    assert (await history.get_run(run_id)).status == pb.RUN_RUNNING
    assert [r.status for r in await history.list_runs(agent="a1")] == [pb.RUN_RUNNING]
    call.exit(pb.RUN_SUCCEEDED, 0)
    await stream.finished()
    assert (await history.get_run(run_id)).status == pb.RUN_SUCCEEDED
    assert await history.cancel(run_id) == []  # known, but over
    with pytest.raises(errors.RunNotFoundError):
        await history.get_run("r-nothing")
    with pytest.raises(errors.RunNotFoundError):
        await history.cancel("r-nothing")


async def test_stop_asks_the_agent_to_shut_down(two: Registry, dispatcher: Dispatcher, link: FakeAgentLink) -> None:
    await dispatcher.stop_agent("a1")
    assert link.shut_down == ["a1"]
    assert two.info("a1").status == pb.AGENT_STOPPED
    with pytest.raises(errors.AgentOfflineError, match="is stopped; only an online agent can be stopped"):
        await dispatcher.stop_agent("a1")
    link.unreachable.add("a2")
    with pytest.raises(errors.AgentUnreachableError):
        await dispatcher.stop_agent("a2")
    assert two.info("a2").status == pb.AGENT_ONLINE
    with pytest.raises(errors.AgentNotFoundError):
        await dispatcher.stop_agent("a3")


async def test_delete_forgets_and_revokes_even_an_unreachable_agent(
    two: Registry, dispatcher: Dispatcher, link: FakeAgentLink, deleted: list[str]
) -> None:
    link.unreachable.add("a1")
    await dispatcher.delete_agent("a1")
    assert two.get("a1") is None
    assert link.forgotten == ["a1"] and deleted == ["a1"]

