"""The master and its store, end to end: PostgreSQL as --store, and store health on the wire."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sloth_core.client import MasterClient
from sloth_core.errors import HistoryUnsavedError
from sloth_core.master.server import Master, MasterConfig
from sloth_core.storage import RunRecord
from tests.fleet import Fleet
from tests.pgtest import temp_database


def test_a_master_with_a_postgresql_store_keeps_its_runs_there(fleet: Fleet) -> None:
    import psycopg

    with temp_database() as url:
        try:
            fleet.start_master("--store", url)
            fleet.start_agent("a1")
            ran = fleet.cli("agent", "run", "a1", "echo from postgres", "--json")
            assert ran.returncode == 0, ran.stderr.decode()
            run = json.loads(ran.stdout)
            assert run["stdout"] == "from postgres\n"

            listed = fleet.cli("runs", "list", "--json")
            assert listed.returncode == 0, listed.stderr.decode()
            assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [(run["run_id"], "succeeded")]
            shown = fleet.cli("runs", "show", run["run_id"], "--raw")
            assert shown.stdout == b"from postgres\n"

            status = fleet.cli("master", "status").stdout.decode()
            assert f"history is being saved to {url}" in status
            assert not (fleet.master_dir / "master.db").exists()
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT agent, command FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
            assert row == ("a1", "echo from postgres")
        finally:
            fleet.close()  # before the database is dropped


@pytest.fixture
async def master(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = Master(MasterConfig(data_dir=tmp_path / "master", bind="127.0.0.1", port=0, insecure=True))
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


async def test_watch_status_and_run_say_when_history_is_not_saved(master: Master) -> None:
    storage = master.storage
    client = MasterClient(master.address, None)
    try:
        events = client.watch()
        first = await anext(events)
        assert first.snapshot.store.store.endswith("master.db") and not first.snapshot.store.failing

        real = storage._apply  # type: ignore[attr-defined]

        async def disk_full(batch: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        storage._apply = disk_full  # type: ignore[attr-defined]
        storage.save_run(RunRecord("r-1", "j-1", "a1", "true", "admin", 3, 1.0))
        await storage.flush()
        event = await anext(events)
        assert event.WhichOneof("kind") == "store"
        assert event.store.failing and event.store.queued == 1
        assert event.store.warning.startswith("history is not being saved: ")
        assert "database or disk is full" in event.store.warning
        assert (await client.get_status()).store.warning == event.store.warning

        storage._queue.limit = 1  # type: ignore[attr-defined]  # full of run records: new runs are refused
        with pytest.raises(HistoryUnsavedError, match="new runs are refused"):
            async for _ in client.run(names=["a1"], command="true"):
                pass
        event = await anext(events)
        assert event.store.refusing_runs, "consoles are told that runs are refused"

        storage._apply = real  # type: ignore[attr-defined]
        await storage.flush()
        event = await anext(events)
        assert event.WhichOneof("kind") == "store" and not event.store.failing and event.store.warning == ""
        assert not (await client.get_status()).store.failing
    finally:
        await client.close()
