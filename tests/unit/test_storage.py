"""The SQLite store: what goes in comes back out (agents, runs, output)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord, RunRecord, StoredChunk
from sloth_core.storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.timeout(5)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    storage = SQLiteStorage(tmp_path / "master.db")
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


def run(run_id: str, agent: str = "a1", *, job_id: str = "j-1", created_at: float = 1.0, status: int = pb.RUN_SUCCEEDED) -> RunRecord:
    return RunRecord(run_id, job_id, agent, "echo hi", "admin:ops", status, created_at, exit_code=0, stdout_bytes=3)


async def test_agents_round_trip(store: SQLiteStorage, tmp_path: Path) -> None:
    agent = AgentRecord("web-1", "127.0.0.1:5001", "0.1", "host", "Linux", {"role": "web"}, pb.AGENT_ONLINE, 1.0, 2.0, "i-1")
    store.save_agents([agent, AgentRecord("db-1", "127.0.0.1:5002")])
    store.delete_agent("db-1")
    assert await store.load_agents() == [agent]
    await store.close()
    reopened = SQLiteStorage(tmp_path / "master.db")
    await reopened.open()
    try:
        assert await reopened.load_agents() == [agent]
    finally:
        await reopened.close()


async def test_runs_round_trip_and_filter(store: SQLiteStorage) -> None:
    store.save_runs([run("r-1", created_at=1.0), run("r-2", "a2", created_at=2.0, job_id="j-2", status=pb.RUN_FAILED)])
    assert await store.get_run("r-1") == run("r-1", created_at=1.0)
    assert await store.get_run("r-none") is None
    assert [r.run_id for r in await store.list_runs()] == ["r-2", "r-1"]
    assert [r.run_id for r in await store.list_runs(agent="a1")] == ["r-1"]
    assert [r.run_id for r in await store.list_runs(status=pb.RUN_FAILED)] == ["r-2"]
    assert [r.run_id for r in await store.list_runs(job_id="j-2")] == ["r-2"]
    assert [r.run_id for r in await store.list_runs(limit=1)] == ["r-2"]


async def test_output_round_trips_byte_exact_in_order(store: SQLiteStorage) -> None:
    store.save_run(run("r-1"))
    store.append_output("r-1", [StoredChunk(2, pb.STDERR, b"\xff\x00err", 0)])
    store.append_output("r-1", [StoredChunk(1, pb.STDOUT, b"out", 0), StoredChunk(3, pb.STDOUT, b"tail", 1)])
    chunks = await store.read_output("r-1")
    assert [(c.seq, c.stream, c.data, c.part) for c in sorted(chunks, key=lambda c: (c.seq, c.part))] == [
        (1, pb.STDOUT, b"out", 0),
        (2, pb.STDERR, b"\xff\x00err", 0),
        (3, pb.STDOUT, b"tail", 1),
    ]


async def test_runs_in_flight_at_a_restart_are_marked(store: SQLiteStorage) -> None:
    store.save_runs([run("r-1", status=pb.RUN_RUNNING), run("r-2")])
    assert await store.mark_unfinished(pb.RUN_LOST, "the master stopped", 9.0) == 1
    lost = await store.get_run("r-1")
    assert lost is not None and (lost.status, lost.error, lost.finished_at) == (pb.RUN_LOST, "the master stopped", 9.0)
    assert (await store.get_run("r-2")) == run("r-2")


async def test_pruning_keeps_the_newest_runs_per_agent(store: SQLiteStorage) -> None:
    store.save_runs([run(f"r-{i}", created_at=float(i)) for i in range(5)])
    store.save_run(run("r-other", "a2"))
    store.prune_runs("a1", 2)
    assert [r.run_id for r in await store.list_runs(agent="a1")] == ["r-4", "r-3"]
    assert await store.get_run("r-other") is not None
