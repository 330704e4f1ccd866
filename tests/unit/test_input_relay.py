"""Callers' input on its way to runs: bounded for one run, one capped copy with cursors for several."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sloth_core import errors
from sloth_core.harness import wait_until
from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import EventBus
from sloth_core.master.input_relay import COALESCE_BYTES, InputRelay, SharedInput, StreamedInput
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from tests.unit.conftest import register
from tests.unit.fakes import FakeAgentLink, FakeClock, MemoryStorage

pytestmark = pytest.mark.timeout(5)


def data(payload: bytes) -> pb.RunInput:
    return pb.RunInput(stdin=payload)


EOF = pb.RunInput(eof=True)


async def take(items: AsyncIterator[pb.RunInput], count: int) -> list[pb.RunInput]:
    return [await anext(items) for _ in range(count)]


async def drain(items: AsyncIterator[pb.RunInput]) -> bytes:
    got = b""
    async for item in items:
        got += item.stdin if item.HasField("stdin") else b"<EOF>"
    return got


async def blocked(awaitable: asyncio.Future[None] | asyncio.Task[None]) -> bool:
    """Whether it is still waiting after the loop had every chance to run it."""
    for _ in range(20):
        await asyncio.sleep(0)
    return not awaitable.done()


# ---------------------------------------------------------------- one run: streamed


async def test_a_streamed_input_holds_a_bounded_queue_and_the_caller_waits_for_room() -> None:
    feed = StreamedInput(limit=4)
    for i in range(4):
        await feed.put(data(b"%d" % i))
    fifth = asyncio.ensure_future(feed.put(data(b"4")))
    assert await blocked(fifth), "a full queue must stop the caller, not grow"
    assert feed.queued == 4
    reader = feed.read()
    assert [i.stdin for i in await take(reader, 1)] == [b"0123"], "what waits together goes as one message"
    await asyncio.wait_for(fifth, 1)
    rest = asyncio.ensure_future(drain(reader))
    await asyncio.wait_for(feed.put(EOF), 1)
    assert await asyncio.wait_for(rest, 1) == b"4<EOF>"


async def test_a_backlog_goes_to_the_agent_in_bounded_messages_in_order() -> None:
    feed = StreamedInput(limit=100)
    for i in range(10):
        await feed.put(data(bytes([65 + i]) * 65536))
    await feed.put(pb.RunInput(resize=pb.WindowSize(rows=2, cols=2)))
    await feed.put(data(b"after"))
    feed.close()
    messages = [m async for m in feed.read()]
    sizes = [len(m.stdin) if m.HasField("stdin") else "resize" for m in messages]
    assert sizes == [COALESCE_BYTES, COALESCE_BYTES, 2 * 65536, "resize", 5]
    assert b"".join(m.stdin for m in messages) == b"".join(bytes([65 + i]) * 65536 for i in range(10)) + b"after"


async def test_resizes_travel_in_order_with_the_keystrokes() -> None:
    feed = StreamedInput()
    await feed.put(data(b"ls\r"))
    await feed.put(pb.RunInput(resize=pb.WindowSize(rows=50, cols=132)))
    await feed.put(data(b"exit\r"))
    feed.close()
    kinds = [i.WhichOneof("kind") async for i in feed.read()]
    assert kinds == ["stdin", "resize", "stdin"]


async def test_once_the_run_stops_reading_its_input_is_dropped_and_the_caller_never_waits() -> None:
    feed = StreamedInput(limit=2)
    reader = feed.read()
    await feed.put(data(b"a"))
    assert (await anext(reader)).stdin == b"a"
    await reader.aclose()  # the command exited (or closed its stdin): the agent hung up
    for _ in range(10):  # far past the queue's bound
        await asyncio.wait_for(feed.put(data(b"x" * 1024)), 1)
    assert feed.queued == 0


async def test_a_caller_waiting_for_room_is_released_when_the_run_ends() -> None:
    feed = StreamedInput(limit=1)
    await feed.put(data(b"a"))
    waiting = asyncio.ensure_future(feed.put(data(b"b")))
    assert await blocked(waiting)
    feed.close()
    await asyncio.wait_for(waiting, 1)


async def test_a_run_input_is_read_once() -> None:
    feed = StreamedInput()
    first = feed.read()
    feed.close()
    assert await drain(first) == b""
    with pytest.raises(errors.RunExistsError):
        await anext(feed.read())


# ---------------------------------------------------------------- several runs: shared


async def test_every_run_of_a_fanout_reads_all_of_the_input_with_its_own_cursor() -> None:
    feed = SharedInput(cap=1024)
    early = feed.read()
    await feed.put(data(b"one "))
    assert (await anext(early)).stdin == b"one "
    await feed.put(data(b"two "))
    await feed.put(data(b""))  # nothing: not kept
    await feed.put(pb.RunInput(resize=pb.WindowSize(rows=1, cols=1)))  # no terminal: ignored
    await feed.put(EOF)
    late = feed.read()  # a run that starts later (--parallel) still gets all of it
    assert await drain(late) == b"one two <EOF>"
    assert await drain(early) == b"two <EOF>"
    assert feed.size == 8, "kept once, however many runs read it"


async def test_a_reader_waits_at_the_end_until_more_comes_or_eof() -> None:
    feed = SharedInput(cap=1024)
    reader = asyncio.ensure_future(drain(feed.read()))
    assert await blocked(reader)
    await feed.put(data(b"late"))
    assert await blocked(reader), "no EOF yet"
    await feed.put(EOF)
    assert await asyncio.wait_for(reader, 1) == b"late<EOF>"


async def test_input_past_the_cap_is_a_typed_error_and_keeps_nothing_more() -> None:
    feed = SharedInput(cap=10)
    await feed.put(data(b"x" * 10))
    with pytest.raises(errors.StdinTooLargeError, match="stdin for several agents is over"):
        await feed.put(data(b"y"))
    assert feed.size == 10
    assert errors.StdinTooLargeError.exit_code == 2


async def test_a_fanout_is_ready_to_start_once_its_input_is_complete_or_abandoned() -> None:
    feed = SharedInput(cap=1024)
    ready = asyncio.ensure_future(feed.ready())
    await feed.put(data(b"x"))
    assert await blocked(ready)
    await feed.put(EOF)
    await asyncio.wait_for(ready, 1)
    abandoned = SharedInput(cap=1024)
    waiting = asyncio.ensure_future(abandoned.ready())
    abandoned.close()  # the caller went away mid-input
    await asyncio.wait_for(waiting, 1)
    assert await drain(abandoned.read()) == b"", "no EOF: the runs were never complete"


async def test_the_relay_knows_only_runs_that_take_input() -> None:
    relay = InputRelay()
    feed = StreamedInput()
    relay.add("r-1", feed)
    assert "r-1" in relay
    feed.close()
    assert await drain(relay.read("r-1")) == b""
    relay.remove("r-1")
    with pytest.raises(errors.RunNotFoundError):
        relay.read("r-1")


# ---------------------------------------------------------------- the dispatcher's side


class Caller:
    """An Interact caller: its input as a queue, its events collected."""

    def __init__(self) -> None:
        self.inputs: asyncio.Queue[pb.RunInput | None] = asyncio.Queue()
        self.events: list[pb.RunEvent] = []

    async def read(self) -> pb.RunInput | None:
        return await self.inputs.get()

    def follow(self, events: AsyncIterator[pb.RunEvent]) -> asyncio.Task[None]:
        async def collect() -> None:
            async for event in events:
                self.events.append(event)

        return asyncio.ensure_future(collect())


@pytest.fixture
def relay() -> InputRelay:
    return InputRelay()


@pytest.fixture
def inputs_dispatcher(
    registry: Registry, storage: MemoryStorage, bus: EventBus, link: FakeAgentLink, clock: FakeClock, relay: InputRelay
) -> Dispatcher:
    register(registry, "a1")
    register(registry, "a2")
    return Dispatcher(registry, storage, bus, link, output_cap=1024, runs_per_agent=100, clock=clock,
                      inputs=relay, stdin_cap=16)


def stdin_request(*names: str, command: str = "cat") -> pb.RunRequest:
    return pb.RunRequest(target=pb.Target(names=list(names)), command=command, stdin=True)


def interact(dispatcher: Dispatcher, request: pb.RunRequest) -> tuple[Caller, asyncio.Task[None]]:
    """A caller of ``Interact`` with ``request``, and the task collecting its events."""
    caller = Caller()
    return caller, caller.follow(dispatcher.interact(request, "admin:test", caller.read))


def shell(*names: str) -> pb.RunRequest:
    return pb.RunRequest(target=pb.Target(names=list(names)), pty=pb.Pty(term="xterm", size=pb.WindowSize(rows=24, cols=80)))


async def test_a_terminal_session_is_recorded_as_a_shell_and_its_screen_is_not_kept(
    inputs_dispatcher: Dispatcher, link: FakeAgentLink, storage: MemoryStorage, relay: InputRelay, bus: EventBus,
) -> None:
    watcher = bus.subscribe(include_output=True)
    caller, done = interact(inputs_dispatcher, shell("a1"))
    call = (await link.wait_calls(1))["a1"]
    assert call.request.HasField("pty") and call.request.pty.term == "xterm" and call.request.command == ""
    run_id = call.request.run_id
    await caller.inputs.put(data(b"secret\r"))
    assert (await anext(relay.read(run_id))).stdin == b"secret\r"
    call.start()
    call.output(b"password: ", 1)
    call.exit(pb.RUN_FAILED, 3)
    await asyncio.wait_for(done, 2)
    outputs = [e.output.data for e in caller.events if e.HasField("output")]
    assert outputs == [b"password: "], "the caller sees its screen"
    stored = storage.runs[run_id]
    assert (stored.kind, stored.exit_code, stored.stdout_bytes) == (pb.RUN_SHELL, 3, 10)
    assert storage.output.get(run_id, []) == [], "a shell's screen is not kept in history"
    fed = []
    while not watcher.queue.empty():
        item = watcher.queue.get_nowait()
        if item is not None and item.HasField("run"):
            fed.append(item.run.WhichOneof("kind"))
    assert fed == ["started", "finished"], "consoles see the session start and end, not its screen"
    watcher.close()
    assert run_id not in relay


async def test_a_terminal_session_is_with_exactly_one_agent(inputs_dispatcher: Dispatcher) -> None:
    with pytest.raises(errors.ShellTargetError):
        inputs_dispatcher.start_job(shell("a1", "a2"), "admin:test", with_input=True)
    with pytest.raises(errors.ShellTargetError):
        inputs_dispatcher.start_job(shell("a*"), "admin:test", with_input=True)


async def test_stdin_and_terminals_need_the_interact_call(inputs_dispatcher: Dispatcher) -> None:
    with pytest.raises(errors.UsageError):
        inputs_dispatcher.start_job(shell("a1"), "admin:test")
    with pytest.raises(errors.UsageError):
        inputs_dispatcher.start_job(stdin_request("a1"), "admin:test")


async def test_a_fanout_over_the_cap_runs_nothing_and_ends_with_the_typed_error(
    inputs_dispatcher: Dispatcher, link: FakeAgentLink, storage: MemoryStorage,
) -> None:
    caller, done = interact(inputs_dispatcher, stdin_request("a1", "a2"))
    await caller.inputs.put(data(b"x" * 10))
    await caller.inputs.put(data(b"y" * 10))  # 20 bytes > 16
    with pytest.raises(errors.StdinTooLargeError):
        await asyncio.wait_for(done, 2)
    assert link.calls == {}, "no agent heard of the job"
    await wait_until(lambda: {r.status for r in storage.runs.values()} == {pb.RUN_CANCELLED}, 2, "the runs to be cancelled")
    assert all(r.error.startswith("not run: stdin for several agents is over") for r in storage.runs.values())


async def test_a_fanout_starts_when_its_input_is_complete_and_every_run_reads_all_of_it(
    inputs_dispatcher: Dispatcher, link: FakeAgentLink, relay: InputRelay,
) -> None:
    caller, done = interact(inputs_dispatcher, stdin_request("a1", "a2"))
    await caller.inputs.put(data(b"hello"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert link.calls == {}, "not before the input is complete"
    await caller.inputs.put(pb.RunInput(eof=True))  # the caller's EOF
    await caller.inputs.put(None)  # then it closes its side
    calls = await link.wait_calls(2)
    for call in calls.values():
        assert call.request.stdin
        assert await drain(relay.read(call.request.run_id)) == b"hello<EOF>"
        call.start()
        call.exit(pb.RUN_SUCCEEDED, 0)
    await asyncio.wait_for(done, 2)


async def test_the_caller_going_away_cancels_a_stdin_run(
    inputs_dispatcher: Dispatcher, link: FakeAgentLink, storage: MemoryStorage,
) -> None:
    caller = Caller()
    events = inputs_dispatcher.interact(stdin_request("a1", command="cat > f"), "admin:test", caller.read)
    assert (await anext(events)).HasField("job")
    call = (await link.wait_calls(1))["a1"]
    call.start()
    assert (await anext(events)).HasField("started")
    await events.aclose()  # the caller hung up mid-input
    await wait_until(lambda: storage.runs[call.request.run_id].status == pb.RUN_CANCELLED, 2, "the run to be cancelled")
    assert link.cancelled == [call.request.run_id]
