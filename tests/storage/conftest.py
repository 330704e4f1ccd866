"""Every storage test runs against both backends: SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sloth_core.storage.queued import QueuedStorage
from tests.pgtest import temp_database

StoreFactory = Callable[..., Awaitable[QueuedStorage]]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "master.db")
    else:
        with temp_database() as url:
            yield "postgresql", url


@pytest.fixture
async def open_store(store_location: tuple[str, str]) -> AsyncIterator[StoreFactory]:
    """``await open_store()`` opens a store at this test's location (again, if called again)."""
    kind, where = store_location
    opened: list[QueuedStorage] = []

    async def make(**kwargs: Any) -> QueuedStorage:
        if kind == "sqlite":
            from sloth_core.storage.sqlite import SQLiteStorage

            store: QueuedStorage = SQLiteStorage(Path(where), **kwargs)
        else:
            from sloth_core.storage.postgres import PostgresStorage

            store = PostgresStorage(where, **kwargs)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        if store._writer is not None:
            await store.close()


@pytest.fixture
def outage(store_location: tuple[str, str]) -> Callable[[QueuedStorage], Callable[[], None]]:
    """``heal = outage(store)``: the store fails every write as its disk full or server gone would."""
    kind, _ = store_location

    def transient() -> Exception:
        if kind == "sqlite":
            return sqlite3.OperationalError("database or disk is full")
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")

    def start(store: QueuedStorage) -> Callable[[], None]:
        real = store._apply

        async def failing(batch: Any) -> None:
            raise transient()

        store._apply = failing  # type: ignore[method-assign]

        def heal() -> None:
            store._apply = real  # type: ignore[method-assign]

        return heal

    return start
