"""What only the PostgreSQL store has: migrations under a lock, and URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sloth_core.errors import StorageError, UsageError
from sloth_core.storage import open_store
from sloth_core.storage.postgres import MIGRATIONS, PostgresStorage, redact
from sloth_core.storage.sqlite import SQLiteStorage
from tests.pgtest import temp_database

ALL_VERSIONS = list(range(1, len(MIGRATIONS) + 1))


async def test_masters_starting_at_once_on_an_empty_database_migrate_it_once() -> None:
    with temp_database() as url:
        stores = [PostgresStorage(url) for _ in range(4)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            assert sorted(v for s in stores for v in s.migrations_applied) == ALL_VERSIONS
            import psycopg

            async with await psycopg.AsyncConnection.connect(url) as conn:
                cur = await conn.execute("SELECT version FROM sloth_schema_version ORDER BY version")
                assert await cur.fetchall() == [(v,) for v in ALL_VERSIONS]
        finally:
            await asyncio.gather(*(s.close() for s in stores))


async def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    store = PostgresStorage("postgresql://sloth:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(StorageError) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith("cannot open the history store: postgresql://sloth@127.0.0.1:1/nowhere: ")
    assert "hunter2" not in message


def test_the_store_is_chosen_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLOTH_RUNNER_STORE", raising=False)
    assert isinstance(open_store(None, tmp_path), SQLiteStorage)
    pg = open_store("postgresql://u:secret@db.example:5433/sloth?sslmode=require", tmp_path)
    assert isinstance(pg, PostgresStorage) and pg.where == "postgresql://u@db.example:5433/sloth"
    monkeypatch.setenv("SLOTH_RUNNER_STORE", "postgres://u@h/d")
    assert isinstance(open_store(None, tmp_path), PostgresStorage)
    with pytest.raises(UsageError, match="unknown store 'mysql'"):
        open_store("mysql://u@h/d", tmp_path)


def test_redact_keeps_user_host_port_and_database() -> None:
    assert redact("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"
    assert redact("postgresql://a:b@[::1]:5432/x?password=y") == "postgresql://a@[::1]:5432/x"


async def test_writes_outlive_the_server_dropping_every_connection() -> None:
    import psycopg

    from tests.storage.test_storage import run

    with temp_database() as url:
        store = PostgresStorage(url)
        await store.open()
        try:
            store.save_runs([run("r-1")])
            await store.flush()
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(url.rsplit("/", 1)[0] + "/test", autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
            store.save_runs([run("r-2", created=2.0)])
            for _ in range(5):  # the first pass may meet a dead connection; it is retried
                await store.flush()
                if store.health().queued == 0:
                    break
            assert store.health().queued == 0 and not store.health().failing
            assert [r.run_id for r in await store.list_runs()] == ["r-2", "r-1"]
        finally:
            await store.close()
