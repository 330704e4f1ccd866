"""SQLite storage, the embedded default: one connection owned by one thread, WAL.

The database and its ``-wal``/``-shm`` files hold every command and its
output: they are created 0600 (SQLite gives the side files the database
file's mode, so creating that one private is enough) and tightened if an
older version left them wider. The schema is versioned with ``PRAGMA
user_version``; a master refuses a database written by a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sloth_core.storage.pending import DEFAULT_QUEUE_LIMIT, Batch, Row
from sloth_core.storage.queued import AGENT_COLUMNS, RUN_COLUMNS, QueuedStorage, run_filter, schema_too_new

T = TypeVar("T")

PRIVATE_MODE = 0o600

# Each entry upgrades the schema by one version (user_version = its index + 1).
# Version 1 is the schema of the releases before versioning, hence IF NOT EXISTS.
MIGRATIONS = [
    """
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
    """,
    # Several masters (PostgreSQL) record which one drives a run; SQLite keeps the column for one schema.
    "ALTER TABLE runs ADD COLUMN driver TEXT NOT NULL DEFAULT ''",
    # Agents' facts, stored by the masters of a cluster; the same schema here.
    "ALTER TABLE agents ADD COLUMN facts BLOB NOT NULL DEFAULT x''",
    # A command (0) or a terminal session (1, `agent shell`): sloth_pb2.RunKind.
    "ALTER TABLE runs ADD COLUMN kind INTEGER NOT NULL DEFAULT 0",
]

_PERMANENT = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.NotSupportedError,
)


def make_private(path: Path) -> None:
    """Create ``path`` 0600 if missing; tighten it and its WAL side files if wider."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_MODE))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, PRIVATE_MODE)


def _migrate(conn: sqlite3.Connection, where: str) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise schema_too_new(version, len(MIGRATIONS), where)
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    puts = [row for row in batch.agents.values() if row is not None]
    if puts:
        marks = ", ".join("?" for _ in AGENT_COLUMNS)
        conn.executemany(f"INSERT OR REPLACE INTO agents VALUES ({marks})", puts)
    deletes = [(name,) for name, row in batch.agents.items() if row is None]
    if deletes:
        conn.executemany("DELETE FROM agents WHERE name = ?", deletes)
    if batch.runs:
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        conn.executemany(f"INSERT OR REPLACE INTO runs VALUES ({marks})", list(batch.runs.values()))
    if batch.output:
        conn.executemany("INSERT OR REPLACE INTO run_output VALUES (?, ?, ?, ?, ?)", batch.output)
    for agent, keep in batch.prunes.items():
        _prune(conn, agent, keep)


def _prune(conn: sqlite3.Connection, agent: str, keep: int) -> None:
    from sloth_core.proto import sloth_pb2 as pb

    # Runs in flight are never pruned, however many finished since.
    doomed = [
        (row[0],)
        for row in conn.execute(
            "SELECT run_id FROM runs WHERE agent = ? AND status NOT IN (?, ?) "
            "ORDER BY created_at DESC LIMIT -1 OFFSET ?",
            (agent, pb.RUN_PENDING, pb.RUN_RUNNING, keep),
        )
    ]
    conn.executemany("DELETE FROM run_output WHERE run_id = ?", doomed)
    conn.executemany("DELETE FROM runs WHERE run_id = ?", doomed)


def _in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class SQLiteStorage(QueuedStorage):
    """The embedded default :class:`~sloth_core.storage.Storage`."""

    def __init__(self, path: Path, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        super().__init__(str(path), queue_limit)
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sloth-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            assert self._conn is not None
            return fn(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, _PERMANENT):
            return False
        return isinstance(exc, (sqlite3.DatabaseError, OSError, MemoryError))

    # ------------------------------------------------------------ lifecycle

    async def _open_db(self) -> None:
        def connect() -> None:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_private(self._path)
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                _migrate(conn, self.where)
            except BaseException:
                conn.close()
                raise
            self._conn = conn

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def _close_db(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ writes

    async def _apply(self, batch: Batch) -> None:
        await self._call(lambda c: _in_transaction(c, lambda c: _write_batch(c, batch)))

    # ------------------------------------------------------------ reads

    async def _db_load_agents(self) -> list[Row]:
        cols = ", ".join(AGENT_COLUMNS)
        return await self._call(lambda c: c.execute(f"SELECT {cols} FROM agents").fetchall())

    async def _db_mark_unfinished(self, status: int, error: str, now: float, drivers: list[str] | None) -> int:
        from sloth_core.proto import sloth_pb2 as pb

        def mark(conn: sqlite3.Connection) -> int:
            only = f" AND driver IN ({', '.join('?' for _ in drivers)})" if drivers is not None else ""
            return conn.execute(
                f"UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE status IN (?, ?){only}",
                (status, error, now, pb.RUN_PENDING, pb.RUN_RUNNING, *(drivers or [])),
            ).rowcount

        return await self._call(lambda c: _in_transaction(c, mark))

    async def _db_get_run(self, run_id: str) -> Row | None:
        cols = ", ".join(RUN_COLUMNS)
        return await self._call(
            lambda c: c.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )

    async def _db_runs_in_flight(self, other_than: str) -> list[Row]:
        from sloth_core.proto import sloth_pb2 as pb

        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE status IN (?, ?) AND driver <> ?"
        return await self._call(lambda c: c.execute(sql, (pb.RUN_PENDING, pb.RUN_RUNNING, other_than)).fetchall())

    async def _db_list_runs(self, agent: str, status: int, job_id: str, limit: int) -> list[Row]:
        clause, args = run_filter(agent, status, job_id, "?")
        cols = ", ".join(RUN_COLUMNS)
        sql = f"SELECT {cols} FROM runs {clause} ORDER BY created_at DESC, run_id LIMIT ?"
        args.append(limit)
        return await self._call(lambda c: c.execute(sql, args).fetchall())

    async def _db_ids_with_prefix(self, column: str, prefix: str, limit: int) -> list[str]:
        # A range on the column (indexed) rather than LIKE, whose wildcards
        # and case folding would need escaping and defeat the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        sql = f"SELECT DISTINCT {column} FROM runs WHERE {column} >= ? AND {column} < ? ORDER BY {column} LIMIT ?"
        rows = await self._call(lambda c: c.execute(sql, (prefix, upper, limit)).fetchall())
        return [row[0] for row in rows]

    async def _db_read_output(self, run_id: str) -> list[tuple[int, int, int, bytes]]:
        return await self._call(
            lambda c: c.execute(
                "SELECT seq, part, stream, data FROM run_output WHERE run_id = ? ORDER BY seq, part",
                (run_id,),
            ).fetchall()
        )
