"""SQLite storage: one connection owned by one thread, WAL, batched writes.

Writes are queued without awaiting and committed together by the storage
thread, so a burst (1,000 runs finishing) costs one transaction instead of
1,000. Reads go through the same thread, after every write queued before
them, so a reader always sees what the master already decided.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from sloth_core.storage import AgentRecord, RunRecord, StoredChunk

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    hostname TEXT NOT NULL,
    os TEXT NOT NULL,
    labels TEXT NOT NULL,
    status INTEGER NOT NULL,
    registered_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    instance_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    command TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    status INTEGER NOT NULL,
    created_at REAL NOT NULL,
    timeout_s REAL NOT NULL,
    exit_code INTEGER NOT NULL,
    signal INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    error TEXT NOT NULL,
    stdout_bytes INTEGER NOT NULL,
    stderr_bytes INTEGER NOT NULL,
    dropped_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent, created_at);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job_id);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS run_output (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, seq, part)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = [f.name for f in fields(RunRecord)]
_AGENT_COLUMNS = [f.name for f in fields(AgentRecord)]
_run_row = operator.attrgetter(*_RUN_COLUMNS)
_agent_fields = operator.attrgetter(*_AGENT_COLUMNS)


def _agent_row(record: AgentRecord) -> tuple[Any, ...]:
    values = list(_agent_fields(record))
    values[_AGENT_COLUMNS.index("labels")] = json.dumps(record.labels, sort_keys=True)
    return tuple(values)


def _agent_from_row(row: tuple[Any, ...]) -> AgentRecord:
    values = dict(zip(_AGENT_COLUMNS, row, strict=True))
    values["labels"] = json.loads(values["labels"])
    return AgentRecord(**values)


class SQLiteStorage:
    """The embedded default :class:`~sloth_core.storage.Storage`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sloth-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Callable[[sqlite3.Connection], None]] = []
        self._lock = threading.Lock()
        self._flush_scheduled = False

    # ------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        self._flush_pending()
        return fn(self._conn)

    def _write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        with self._lock:
            self._pending.append(fn)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        self._executor.submit(self._flush_pending)

    def _flush_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        if not batch or self._conn is None:
            return
        with self._conn:
            for fn in batch:
                fn(self._conn)

    async def open(self) -> None:
        def connect() -> None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.executescript(_SCHEMA)
            conn.isolation_level = ""  # back to implicit transactions for `with conn`
            self._conn = conn

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def flush(self) -> None:
        await self._call(lambda conn: None)

    async def close(self) -> None:
        if self._conn is None:
            return
        await self.flush()

        def close() -> None:
            assert self._conn is not None
            self._conn.close()
            self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ agents

    async def load_agents(self) -> list[AgentRecord]:
        cols = ", ".join(_AGENT_COLUMNS)
        rows = await self._call(lambda c: c.execute(f"SELECT {cols} FROM agents").fetchall())
        return [_agent_from_row(row) for row in rows]

    def save_agent(self, record: AgentRecord) -> None:
        self.save_agents([record])

    def save_agents(self, records: list[AgentRecord]) -> None:
        rows = [_agent_row(r) for r in records]
        marks = ", ".join("?" for _ in _AGENT_COLUMNS)
        self._write(lambda c: c.executemany(f"INSERT OR REPLACE INTO agents VALUES ({marks})", rows))

    def delete_agent(self, name: str) -> None:
        self._write(lambda c: c.execute("DELETE FROM agents WHERE name = ?", (name,)))

    # ------------------------------------------------------------ runs

    def save_run(self, record: RunRecord) -> None:
        self.save_runs([record])

    def save_runs(self, records: list[RunRecord]) -> None:
        # attrgetter, not dataclasses.astuple: astuple deep-copies, and was
        # a tenth of the master's time while 1,000 runs finished.
        rows = [_run_row(r) for r in records]
        marks = ", ".join("?" for _ in _RUN_COLUMNS)
        self._write(lambda c: c.executemany(f"INSERT OR REPLACE INTO runs VALUES ({marks})", rows))

    def append_output(self, run_id: str, chunks: list[StoredChunk]) -> None:
        rows = [(run_id, ch.seq, ch.part, ch.stream, ch.data) for ch in chunks]
        self._write(
            lambda c: c.executemany("INSERT OR REPLACE INTO run_output VALUES (?, ?, ?, ?, ?)", rows)
        )

    def prune_runs(self, agent: str, keep: int) -> None:
        from sloth_core.proto import sloth_pb2 as pb

        def prune(conn: sqlite3.Connection) -> None:
            # Runs in flight are never pruned, however many finished since.
            doomed = [
                row[0]
                for row in conn.execute(
                    "SELECT run_id FROM runs WHERE agent = ? AND status NOT IN (?, ?) "
                    "ORDER BY created_at DESC LIMIT -1 OFFSET ?",
                    (agent, pb.RUN_PENDING, pb.RUN_RUNNING, keep),
                )
            ]
            for run_id in doomed:
                conn.execute("DELETE FROM run_output WHERE run_id = ?", (run_id,))
                conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

        self._write(prune)

    async def mark_unfinished(self, status: int, error: str, now: float) -> int:
        from sloth_core.proto import sloth_pb2 as pb

        def mark(conn: sqlite3.Connection) -> int:
            with conn:
                cur = conn.execute(
                    "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE status IN (?, ?)",
                    (status, error, now, pb.RUN_PENDING, pb.RUN_RUNNING),
                )
            return cur.rowcount

        return await self._call(mark)

    async def get_run(self, run_id: str) -> RunRecord | None:
        cols = ", ".join(_RUN_COLUMNS)
        row = await self._call(
            lambda c: c.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        return RunRecord(*row) if row else None

    async def list_runs(
        self, *, agent: str = "", status: int = 0, job_id: str = "", limit: int = 50
    ) -> list[RunRecord]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("agent", agent), ("status", status), ("job_id", job_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        cols = ", ".join(_RUN_COLUMNS)
        sql = f"SELECT {cols} FROM runs {clause} ORDER BY created_at DESC, run_id LIMIT ?"
        args.append(limit)
        rows = await self._call(lambda c: c.execute(sql, args).fetchall())
        return [RunRecord(*row) for row in rows]

    async def resolve_run_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids that start with ``prefix``, in order, at most ``limit``."""
        return await self._ids_with_prefix("run_id", prefix, limit)

    async def resolve_job_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Job ids that start with ``prefix``, in order, at most ``limit``."""
        return await self._ids_with_prefix("job_id", prefix, limit)

    async def _ids_with_prefix(self, column: str, prefix: str, limit: int) -> list[str]:
        if not prefix:
            return []
        # A range on the column (indexed) rather than LIKE, whose wildcards
        # and case folding would need escaping and defeat the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        sql = f"SELECT DISTINCT {column} FROM runs WHERE {column} >= ? AND {column} < ? ORDER BY {column} LIMIT ?"
        rows = await self._call(lambda c: c.execute(sql, (prefix, upper, limit)).fetchall())
        return [row[0] for row in rows]

    async def read_output(self, run_id: str) -> list[StoredChunk]:
        rows = await self._call(
            lambda c: c.execute(
                "SELECT seq, part, stream, data FROM run_output WHERE run_id = ? ORDER BY seq, part",
                (run_id,),
            ).fetchall()
        )
        return [StoredChunk(seq, stream, bytes(data), part) for seq, part, stream, data in rows]
