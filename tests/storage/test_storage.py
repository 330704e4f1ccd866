"""The storage contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sloth_core.errors import HistoryUnsavedError, StorageError
from sloth_core.harness import wait_until
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord, RunRecord, StoredChunk
from tests.storage.conftest import StoreFactory


def run(run_id: str, *, agent: str = "web-1", created: float = 1.0, status: int = pb.RUN_SUCCEEDED,
        job: str = "j-1") -> RunRecord:
    return RunRecord(
        run_id=run_id, job_id=job, agent=agent, command="echo hi", requested_by="admin:local",
        status=status, created_at=created, exit_code=0, finished_at=created + 1, stdout_bytes=3,
    )


async def test_everything_saved_is_there_after_a_restart(open_store: StoreFactory) -> None:
    store = await open_store()
    agent = AgentRecord("web-1", "127.0.0.1:50051", "0.1", "h", "linux", {"role": "web"}, pb.AGENT_ONLINE, 1.5, 2.5, "i1")
    store.save_agents([agent, AgentRecord("db-1", "127.0.0.1:50052")])
    store.delete_agent("db-1")
    store.save_runs([run("r-1", created=1.0), run("r-2", created=2.0, agent="web-2")])
    store.append_output("r-1", [StoredChunk(1, pb.STDOUT, b"hi\n", 0), StoredChunk(2, pb.STDERR, b"\xff\x00", 1)])
    await store.close()

    again = await open_store()
    assert await again.load_agents() == [agent]
    assert [r.run_id for r in await again.list_runs()] == ["r-2", "r-1"]
    assert await again.get_run("r-1") == run("r-1", created=1.0)
    assert await again.get_run("r-nope") is None
    chunks = await again.read_output("r-1")
    assert [(c.seq, c.stream, c.data, c.part) for c in chunks] == [(1, pb.STDOUT, b"hi\n", 0), (2, pb.STDERR, b"\xff\x00", 1)]


async def test_listing_filters_orders_and_limits(open_store: StoreFactory) -> None:
    store = await open_store()
    store.save_runs([
        run("r-a", created=1.0, agent="web-1", job="j-1"),
        run("r-b", created=2.0, agent="web-2", job="j-1", status=pb.RUN_FAILED),
        run("r-c", created=3.0, agent="web-1", job="j-2"),
    ])
    await store.flush()
    assert [r.run_id for r in await store.list_runs(agent="web-1")] == ["r-c", "r-a"]
    assert [r.run_id for r in await store.list_runs(status=pb.RUN_FAILED)] == ["r-b"]
    assert [r.run_id for r in await store.list_runs(job_id="j-1")] == ["r-b", "r-a"]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["r-c", "r-b"]


async def test_pruning_keeps_the_newest_and_never_a_run_in_flight(open_store: StoreFactory) -> None:
    store = await open_store()
    store.save_runs([run(f"r-{i}", created=float(i)) for i in range(5)])
    store.save_runs([run("r-live", created=0.5, status=pb.RUN_RUNNING)])
    store.append_output("r-0", [StoredChunk(1, pb.STDOUT, b"old", 0)])
    store.prune_runs("web-1", keep=2)
    await store.flush()
    assert sorted(r.run_id for r in await store.list_runs()) == ["r-3", "r-4", "r-live"]
    assert await store.read_output("r-0") == []


async def test_unfinished_runs_are_marked_at_start(open_store: StoreFactory) -> None:
    store = await open_store()
    store.save_runs([run("r-1", status=pb.RUN_RUNNING), run("r-2", status=pb.RUN_PENDING), run("r-3")])
    assert await store.mark_unfinished(pb.RUN_LOST, "the master stopped", 9.0) == 2
    lost = await store.get_run("r-1")
    assert lost is not None and (lost.status, lost.error, lost.finished_at) == (pb.RUN_LOST, "the master stopped", 9.0)


async def test_only_the_runs_of_masters_that_died_are_marked_lost(open_store: StoreFactory) -> None:
    store = await open_store()
    for run_id, driver in (("r-a", "master-a"), ("r-b", "master-b"), ("r-c", "")):
        record = run(run_id)
        record.status, record.driver = pb.RUN_RUNNING, driver
        store.save_run(record)
    assert await store.mark_unfinished(pb.RUN_LOST, "its master died", 9.0, ["master-a"]) == 1
    statuses = {r: (await store.get_run(r)).status for r in ("r-a", "r-b", "r-c")}  # type: ignore[union-attr]
    assert statuses == {"r-a": pb.RUN_LOST, "r-b": pb.RUN_RUNNING, "r-c": pb.RUN_RUNNING}
    assert (await store.get_run("r-b")).driver == "master-b"  # type: ignore[union-attr]


async def test_a_runs_kind_is_kept_and_listed(open_store: StoreFactory) -> None:
    store = await open_store()
    shell = run("r-shell", created=2.0)
    shell.kind, shell.command = pb.RUN_SHELL, ""
    store.save_runs([run("r-cmd"), shell])
    await store.close()
    store = await open_store()
    assert (await store.get_run("r-shell")).kind == pb.RUN_SHELL  # type: ignore[union-attr]
    assert [(r.run_id, r.kind) for r in await store.list_runs()] == [("r-shell", pb.RUN_SHELL), ("r-cmd", pb.RUN_COMMAND)]


async def test_runs_recorded_before_kinds_existed_read_as_commands(tmp_path: Path) -> None:
    import sqlite3

    from sloth_core.storage.sqlite import MIGRATIONS, SQLiteStorage

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the schema one version back, with a run in it
        for statement in ";".join(MIGRATIONS[:-1]).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
        conn.execute(
            "INSERT INTO runs VALUES ('r-old', 'j-1', 'web-1', 'echo hi', 'admin:local', 3, 1.0, 0, 0, 0, 1.0, 2.0, "
            "'', 3, 0, 0, '')"
        )
    store = SQLiteStorage(path)
    await store.open()
    try:
        assert (await store.get_run("r-old")).kind == pb.RUN_COMMAND  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_runs_in_flight_elsewhere_are_the_unfinished_runs_of_the_other_masters(open_store: StoreFactory) -> None:
    store = await open_store()
    for run_id, driver, status in (("r-a", "master-a", pb.RUN_RUNNING), ("r-b", "master-b", pb.RUN_PENDING),
                                   ("r-c", "master-b", pb.RUN_SUCCEEDED), ("r-d", "master-b", pb.RUN_RUNNING)):
        record = run(run_id)
        record.status, record.driver = status, driver
        store.save_run(record)
    await store.flush()
    ended = run("r-d")
    ended.driver = "master-b"
    store.save_run(ended)  # queued, not yet written: a read must see it finished already
    assert sorted(r.run_id for r in await store.runs_in_flight(other_than="master-a")) == ["r-b"]
    assert sorted(r.run_id for r in await store.runs_in_flight(other_than="master-b")) == ["r-a"]


async def test_a_newer_schema_is_refused_with_a_clear_message(open_store: StoreFactory, store_location: tuple[str, str]) -> None:
    store = await open_store()
    await store.close()
    kind, where = store_location
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(where) as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        import psycopg

        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute("INSERT INTO sloth_schema_version (version) VALUES (99)")
    from sloth_core.storage import postgres, sqlite

    known = len((sqlite if kind == "sqlite" else postgres).MIGRATIONS)
    with pytest.raises(StorageError, match=rf"schema version 99, newer than this master understands \({known}\).*upgrade"):
        await open_store()


async def test_failed_writes_stay_queued_are_logged_once_and_land_when_the_store_recovers(
    open_store: StoreFactory, outage, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    store = await open_store()
    seen = []
    store.on_health_change(seen.append)
    heal = outage(store)
    caplog.set_level(logging.INFO, logger="sloth_core.storage")
    for i in range(20):
        store.save_runs([run(f"r-{i}", created=float(i))])
        await store.flush()
    health = store.health()
    assert health.failing and health.queued == 20
    assert health.warning().startswith("history is not being saved: ")
    assert "database or disk is full" in health.cause or "server closed" in health.cause
    failures = [r for r in caplog.records if "history is not being saved" in r.getMessage()]
    assert len(failures) == 1, "logged once per episode, not per record"
    # Reads show what is queued: `runs list` misses nothing while the store is down.
    assert len(await store.list_runs(limit=100)) == 20
    assert seen and seen[-1].failing

    heal()
    await store.flush()
    assert not store.health().failing and store.health().queued == 0
    assert any("saved again" in r.getMessage() for r in caplog.records)
    assert not seen[-1].failing
    await store.close()
    again = await open_store()
    assert len(await again.list_runs(limit=100)) == 20


async def test_one_bad_record_does_not_take_its_batch_with_it(
    open_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store()
    store.save_runs([run("r-1")])
    store._queue.put_runs([("r-bad",)])  # a malformed row: the store refuses it, and only it
    store.save_runs([run("r-2")])
    store.append_output("r-1", [StoredChunk(1, pb.STDOUT, b"x", 0)])
    await store.flush()
    assert not store.health().failing
    assert store.health().dropped == 1
    assert any("refused run r-bad" in r.getMessage() for r in caplog.records)
    assert sorted(r.run_id for r in await store.list_runs()) == ["r-1", "r-2"]
    assert len(await store.read_output("r-1")) == 1


async def test_a_full_queue_drops_the_oldest_output_first_then_refuses_new_runs(
    open_store: StoreFactory, outage  # type: ignore[no-untyped-def]
) -> None:
    store = await open_store(queue_limit=10)
    heal = outage(store)
    store.save_runs([run("r-1")])
    await store.flush()  # the episode starts: from now on the queue is bounded
    store.append_output("r-1", [StoredChunk(seq, pb.STDOUT, b"%d" % seq, 0) for seq in range(1, 21)])
    assert store.health().dropped == 11  # 1 run + 9 newest chunks fit in 10
    assert [c.seq for c in await store.read_output("r-1")] == list(range(12, 21))
    store.check_accepting()  # output can still make room: runs are accepted

    store.save_runs([run(f"r-{i}") for i in range(2, 11)])  # ten run records: output makes room
    assert store.health().dropped == 20
    store.append_output("r-1", [StoredChunk(21, pb.STDOUT, b"late", 0)])  # nothing left to drop but itself
    health = store.health()
    assert health.refusing_runs
    with pytest.raises(HistoryUnsavedError, match=r"history is not being saved: .*new runs are refused"):
        store.check_accepting()

    heal()
    await store.flush()
    store.check_accepting()
    assert len(await store.list_runs()) == 10
    assert store.health().dropped == 21


async def test_the_writer_retries_by_itself_and_lands_what_came_during_recovery(
    open_store: StoreFactory, outage  # type: ignore[no-untyped-def]
) -> None:
    store = await open_store()
    heal = outage(store)
    store.save_runs([run("r-1")])
    await store.flush()
    assert store.health().failing
    heal()
    real = store._apply
    arrived = False

    async def arriving_meanwhile(batch):  # type: ignore[no-untyped-def]
        nonlocal arrived
        if not arrived:
            arrived = True
            store.save_runs([run("r-2", created=2.0)])  # while the recovering pass runs
        await real(batch)

    store._apply = arriving_meanwhile  # type: ignore[method-assign]
    # No flush(): the writer's own retry must do it.
    await wait_until(lambda: not store.health().failing and store.health().queued == 0, 10, "the queue to drain")
    assert (store.health().failing, store.health().queued) == (False, 0)
    assert [row[0] for row in await store._db_list_runs("", 0, "", 10)] == ["r-2", "r-1"]


async def test_a_read_sees_every_write_made_before_it(open_store: StoreFactory) -> None:
    store = await open_store()
    store.save_agents([AgentRecord("gone", "127.0.0.1:1")])
    store.delete_agent("gone")
    store.save_runs([run(f"r-{i}", created=float(i)) for i in range(4)])
    store.prune_runs("web-1", keep=1)
    assert await store.load_agents() == []
    assert [r.run_id for r in await store.list_runs()] == ["r-3"]


async def test_a_reader_that_hangs_up_mid_write_loses_nothing(open_store: StoreFactory) -> None:
    store = await open_store()
    real = store._apply
    entered = asyncio.Event()

    async def slow(batch):  # type: ignore[no-untyped-def]
        entered.set()
        await asyncio.sleep(0.2)
        await real(batch)

    store._apply = slow  # type: ignore[method-assign]
    store._kick = lambda: None  # type: ignore[method-assign]  # the reader, not the writer task, makes the pass
    store.save_runs([run("r-1")])
    reader = asyncio.create_task(store.list_runs())  # writes what is queued first
    await entered.wait()
    reader.cancel()  # the client hung up
    with pytest.raises(asyncio.CancelledError):
        await reader
    store._apply = real  # type: ignore[method-assign]
    await store.flush()
    assert [row[0] for row in await store._db_list_runs("", 0, "", 10)] == ["r-1"]
