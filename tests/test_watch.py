"""The event feed: a snapshot first, then every agent and run change, live."""

from __future__ import annotations

import asyncio

import pytest

from sloth_core.client import MasterClient, resolve_admin_tls
from sloth_core.errors import SlothError
from sloth_core.proto import sloth_pb2 as pb
from tests.fleet import Fleet

pytestmark = pytest.mark.timeout(60)


def admin_client(fleet: Fleet) -> MasterClient:
    """A client of the fleet's master with the local admin credentials."""
    return MasterClient(fleet.master_address, resolve_admin_tls(None, fleet.master_dir))


async def next_matching(stream, predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    async def scan():  # type: ignore[no-untyped-def]
        async for event in stream:
            if predicate(event):
                return event
        raise AssertionError("the watch stream ended")

    return await asyncio.wait_for(scan(), timeout)


def agent_event(kind: int, name: str):  # type: ignore[no-untyped-def]
    return lambda e: e.HasField("agent") and e.agent.type == kind and e.agent.agent.name == name


def run_event(kind: str, agent: str):  # type: ignore[no-untyped-def]
    return lambda e: e.HasField("run") and e.run.WhichOneof("kind") == kind and e.run.agent == agent


async def test_watch_snapshot_then_deltas(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    async with admin_client(fleet) as client:
        stream = client.watch(include_output=True)
        first = await asyncio.wait_for(anext(stream), 10)
        assert first.HasField("snapshot")
        assert [a.name for a in first.snapshot.agents] == ["a1"]
        assert first.snapshot.agents[0].status == pb.AGENT_ONLINE

        second = await asyncio.to_thread(fleet.start_agent, "a2")
        registered = await next_matching(stream, agent_event(pb.AGENT_REGISTERED, "a2"))
        assert registered.agent.agent.status == pb.AGENT_ONLINE

        ran = asyncio.create_task(asyncio.to_thread(fleet.cli, "agent", "run", "a2", "echo watched; exit 5"))
        started = await next_matching(stream, run_event("started", "a2"))
        assert started.run.started.command == "echo watched; exit 5"
        output = await next_matching(stream, run_event("output", "a2"))
        assert output.run.output.data == b"watched\n"
        finished = await next_matching(stream, run_event("finished", "a2"))
        assert finished.run.finished.status == pb.RUN_FAILED and finished.run.finished.exit_code == 5
        assert (await ran).returncode == 5

        second.kill()
        await next_matching(stream, agent_event(pb.AGENT_WENT_OFFLINE, "a2"))
        deleted = await asyncio.to_thread(fleet.cli, "agent", "delete", "a2", "--yes")
        assert deleted.returncode == 0
        await next_matching(stream, agent_event(pb.AGENT_DELETED, "a2"))


async def test_watch_without_output_skips_output_events(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    async with admin_client(fleet) as client:
        stream = client.watch(include_output=False)
        assert (await anext(stream)).HasField("snapshot")
        await asyncio.to_thread(fleet.cli, "agent", "run", "a1", "seq 1 1000")
        seen = []
        async for event in stream:
            seen.append(event)
            if event.HasField("run") and event.run.HasField("finished"):
                break
        assert not any(e.HasField("run") and e.run.HasField("output") for e in seen)
        assert any(e.HasField("run") and e.run.HasField("started") for e in seen)


async def test_watch_reports_heartbeats_in_batches(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    async with admin_client(fleet) as client:
        stream = client.watch()
        assert (await anext(stream)).HasField("snapshot")
        heard: set[str] = set()
        while heard != {"a1", "a2"}:
            event = await next_matching(stream, lambda e: e.HasField("heartbeats"))
            assert event.heartbeats.at > 0
            heard.update(event.heartbeats.names)


async def test_a_watcher_that_stops_reading_is_let_go_not_buffered(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    async with admin_client(fleet) as client:
        stream = client.watch(include_output=True)
        assert (await anext(stream)).HasField("snapshot")
        # 64 MiB of output while this watcher reads nothing: the master must
        # drop it (bounded memory) rather than queue it all.
        ran = await asyncio.to_thread(fleet.cli, "agent", "run", "a1", "head -c 67108864 /dev/zero", "--raw")
        assert ran.returncode == 0 and len(ran.stdout) == 64 * 1024 * 1024
        with pytest.raises(SlothError, match="fell too far behind"):
            async for _ in stream:
                pass
