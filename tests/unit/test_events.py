"""The event bus: batches no more often than every 20 ms, and bounded per subscriber."""

from __future__ import annotations

import asyncio

import pytest

from sloth_core import errors
from sloth_core.master import events
from sloth_core.master.events import EventBus
from sloth_core.proto import sloth_pb2 as pb

pytestmark = pytest.mark.timeout(5)


def output(data: bytes, run_id: str = "r-1") -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, agent="a1", output=pb.OutputChunk(data=data, seq=1))


def finished(run_id: str) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, agent="a1", finished=pb.RunInfo(run_id=run_id))


async def test_a_burst_arrives_as_one_batch_and_the_next_not_before_the_interval(bus: EventBus) -> None:
    sub = bus.subscribe(include_output=False)
    batches = sub.batches()
    for i in range(100):
        bus.run(finished(f"r-{i}"))
    loop = asyncio.get_running_loop()
    first = await anext(batches)
    sent_at = loop.time()
    assert [e.run.run_id for e in first] == [f"r-{i}" for i in range(100)]
    bus.run(finished("r-late"))
    second = await anext(batches)
    assert [e.run.run_id for e in second] == ["r-late"]
    assert loop.time() - sent_at >= events.MIN_BATCH_INTERVAL_S * 0.9  # timer granularity
    await batches.aclose()


async def test_a_batch_holds_at_most_max_batch_events(bus: EventBus) -> None:
    sub = bus.subscribe(include_output=False)
    sub.max_batch = 3
    sub.min_interval_s = 0.0
    for i in range(7):
        bus.run(finished(f"r-{i}"))
    batches = sub.batches()
    sizes = [len(await anext(batches)) for _ in range(3)]
    assert sizes == [3, 3, 1]
    await batches.aclose()


async def test_output_goes_only_to_subscribers_that_asked_for_it(bus: EventBus) -> None:
    quiet = bus.subscribe(include_output=False)
    loud = bus.subscribe(include_output=True)
    bus.run(output(b"x"))
    bus.run(finished("r-1"))
    assert [e.run.WhichOneof("kind") for e in await anext(quiet.batches())] == ["finished"]
    assert [e.run.WhichOneof("kind") for e in await anext(loud.batches())] == ["output", "finished"]


async def test_a_subscriber_too_far_behind_in_bytes_is_let_go_alone(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "SUBSCRIBER_OUTPUT_BYTES", 10)
    slow = bus.subscribe(include_output=True)
    keeping_up = bus.subscribe(include_output=True)
    reader = keeping_up.batches()
    for _ in range(3):
        bus.run(output(b"abcd"))
        assert len(await anext(reader)) == 1  # read at once: never more than 4 bytes behind
    assert slow.overflowed and not keeping_up.overflowed
    with pytest.raises(errors.TooSlowError):
        async for _ in slow.batches():
            pass
    bus.run(finished("r-1"))
    assert [e.run.WhichOneof("kind") for e in await anext(reader)] == ["finished"]
    await reader.aclose()


async def test_a_subscriber_too_far_behind_in_events_is_let_go(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "SUBSCRIBER_QUEUE", 5)
    sub = bus.subscribe(include_output=False)
    for i in range(6):
        bus.agent(pb.AGENT_WENT_ONLINE, pb.AgentInfo(name=f"a{i}"))
    with pytest.raises(errors.TooSlowError):
        await anext(sub.batches())


async def test_a_closed_subscription_gets_nothing_more(bus: EventBus) -> None:
    sub = bus.subscribe(include_output=True)
    sub.close()
    bus.run(finished("r-1"))
    assert sub.queue.empty()
