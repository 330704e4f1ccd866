"""PostgreSQL storage: the server store, ``--store postgresql://USER@HOST/DB``.

psycopg 3 with its async pool: libpq underneath, so the URL means exactly
what it means to ``psql`` (``sslmode``, ``.pgpass``, ``PGPASSWORD``, service
files), and ``executemany`` runs in pipeline mode, one round trip per batch.

The schema is versioned in ``sloth_schema_version``. A master applies pending
migrations at start while it holds an advisory lock, so masters starting at
once on an empty database migrate it once; a master refuses a schema newer
than it knows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sloth_core.storage.pending import DEFAULT_QUEUE_LIMIT, Batch, Row
from sloth_core.storage.queued import AGENT_COLUMNS, RUN_COLUMNS, QueuedStorage, run_filter, schema_too_new

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("sloth_core.storage")

# pg_advisory_lock key for migrations: "sloth-ru" as a big-endian int64.
MIGRATION_LOCK = int.from_bytes(b"sloth-ru", "big", signed=True)
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 3.0
POOL_MAX = 4

# Each entry upgrades the schema by one version (its index + 1).
MIGRATIONS = [
    """
    CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        version TEXT NOT NULL,
        hostname TEXT NOT NULL,
        os TEXT NOT NULL,
        labels TEXT NOT NULL,
        status INTEGER NOT NULL,
        registered_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        instance_id TEXT NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        command TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        status INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        timeout_s DOUBLE PRECISION NOT NULL,
        exit_code INTEGER NOT NULL,
        signal INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL,
        error TEXT NOT NULL,
        stdout_bytes BIGINT NOT NULL,
        stderr_bytes BIGINT NOT NULL,
        dropped_bytes BIGINT NOT NULL
    );
    CREATE INDEX runs_by_agent ON runs (agent, created_at);
    CREATE INDEX runs_by_job ON runs (job_id);
    CREATE INDEX runs_by_created ON runs (created_at);
    CREATE TABLE run_output (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        part SMALLINT NOT NULL,
        stream SMALLINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (run_id, seq, part)
    );
    """,
    # Several masters: who drives each run, each master's lease, and the
    # cluster's shared security state (tokens, issued and revoked serials;
    # never a private key).
    """
    ALTER TABLE runs ADD COLUMN driver TEXT NOT NULL DEFAULT '';
    CREATE INDEX runs_unfinished ON runs (driver) WHERE status IN (1, 2);
    CREATE TABLE masters (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        identity TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL,
        agents INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sloth_state (
        name TEXT PRIMARY KEY,
        doc JSONB NOT NULL,
        version BIGINT NOT NULL DEFAULT 0
    );
    """,
    # Agents' machine facts, so that every master shows those of agents connected to another.
    "ALTER TABLE agents ADD COLUMN facts BYTEA NOT NULL DEFAULT ''",
    # A command (0) or a terminal session (1, `agent shell`): sloth_pb2.RunKind.
    "ALTER TABLE runs ADD COLUMN kind SMALLINT NOT NULL DEFAULT 0",
]


def _upsert(table: str, columns: list[str], key: list[str]) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    marks = ", ".join("%s" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_AGENT_UPSERT = _upsert("agents", AGENT_COLUMNS, ["name"])
_RUN_UPSERT = _upsert("runs", RUN_COLUMNS, ["run_id"])
_OUTPUT_UPSERT = _upsert("run_output", ["run_id", "seq", "part", "stream", "data"], ["run_id", "seq", "part"])
_PRUNE = """
    WITH doomed AS (
        SELECT run_id FROM runs WHERE agent = %(agent)s AND status NOT IN (%(pending)s, %(running)s)
        ORDER BY created_at DESC OFFSET %(keep)s
    ), gone AS (
        DELETE FROM run_output WHERE run_id IN (SELECT run_id FROM doomed)
    )
    DELETE FROM runs WHERE run_id IN (SELECT run_id FROM doomed)
"""


def redact(url: str) -> str:
    """The URL without its password or options, fit for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def migrate(conn: psycopg.AsyncConnection[Any], where: str) -> list[int]:
    """Apply pending migrations under the advisory lock; the versions applied."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS sloth_schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM sloth_schema_version")
        row = await cur.fetchone()
        version = row[0] if row else 0
        if version > len(MIGRATIONS):
            raise schema_too_new(version, len(MIGRATIONS), where)
        for number in range(version + 1, len(MIGRATIONS) + 1):
            async with conn.transaction():
                await conn.execute(MIGRATIONS[number - 1])  # type: ignore[arg-type]
                await conn.execute("INSERT INTO sloth_schema_version (version) VALUES (%s)", (number,))
            applied.append(number)
            log.info("history store %s: schema migrated to version %d", where, number)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


class PostgresStorage(QueuedStorage):
    """A :class:`~sloth_core.storage.Storage` in a PostgreSQL database."""

    def __init__(self, url: str, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        super().__init__(redact(url), queue_limit)
        self._url = url
        self._pool: AsyncConnectionPool | None = None
        self.migrations_applied: list[int] = []

    def _transient(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(
            exc, (psycopg.OperationalError, psycopg.InterfaceError, psycopg.InternalError, OSError, TimeoutError)
        )

    # ------------------------------------------------------------ lifecycle

    async def _open_db(self) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        try:
            self.migrations_applied = await migrate(conn, self.where)
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._url, min_size=1, max_size=POOL_MAX, open=False, timeout=POOL_TIMEOUT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S}, name="sloth-store",
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self._pool = pool

    async def _close_db(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # ------------------------------------------------------------ writes

    async def _apply(self, batch: Batch) -> None:
        from sloth_core.proto import sloth_pb2 as pb

        assert self._pool is not None
        async with self._pool.connection() as conn, conn.cursor() as cur:
            # One transaction: the pool commits on a clean exit, rolls back otherwise.
            puts = [row for row in batch.agents.values() if row is not None]
            if puts:
                await cur.executemany(_AGENT_UPSERT, puts)
            deletes = [(name,) for name, row in batch.agents.items() if row is None]
            if deletes:
                await cur.executemany("DELETE FROM agents WHERE name = %s", deletes)
            if batch.runs:
                await cur.executemany(_RUN_UPSERT, list(batch.runs.values()))
            if batch.output:
                await cur.executemany(_OUTPUT_UPSERT, list(batch.output))
            for agent, keep in batch.prunes.items():
                await cur.execute(
                    _PRUNE, {"agent": agent, "keep": keep, "pending": pb.RUN_PENDING, "running": pb.RUN_RUNNING}
                )

    # ------------------------------------------------------------ reads

    async def _fetch(self, sql: str, args: Any = None) -> list[Row]:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return await cur.fetchall()

    async def _db_load_agents(self) -> list[Row]:
        return await self._fetch(f"SELECT {', '.join(AGENT_COLUMNS)} FROM agents")

    async def _db_mark_unfinished(self, status: int, error: str, now: float, drivers: list[str] | None) -> int:
        from sloth_core.proto import sloth_pb2 as pb

        assert self._pool is not None
        only = " AND driver = ANY(%s)" if drivers is not None else ""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE runs SET status = %s, error = %s, finished_at = %s WHERE status IN (%s, %s){only}",
                (status, error, now, pb.RUN_PENDING, pb.RUN_RUNNING, *([drivers] if drivers is not None else [])),
            )
            return cur.rowcount

    async def _db_get_run(self, run_id: str) -> Row | None:
        rows = await self._fetch(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = %s", (run_id,))
        return rows[0] if rows else None

    async def _db_runs_in_flight(self, other_than: str) -> list[Row]:
        from sloth_core.proto import sloth_pb2 as pb

        # The predicate of the partial index runs_unfinished: no scan of the whole history.
        return await self._fetch(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE status IN (%s, %s) AND driver <> %s",
            (pb.RUN_PENDING, pb.RUN_RUNNING, other_than),
        )

    async def _db_list_runs(self, agent: str, status: int, job_id: str, limit: int) -> list[Row]:
        clause, args = run_filter(agent, status, job_id, "%s")
        args.append(limit)
        return await self._fetch(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {clause} ORDER BY created_at DESC, run_id COLLATE \"C\" LIMIT %s", args
        )

    async def _db_ids_with_prefix(self, column: str, prefix: str, limit: int) -> list[str]:
        # starts_with() matches literally: no LIKE wildcards to escape.
        rows = await self._fetch(
            f"SELECT DISTINCT {column} FROM runs WHERE starts_with({column}, %s) ORDER BY {column} LIMIT %s",
            (prefix, limit),
        )
        return [row[0] for row in rows]

    async def _db_read_output(self, run_id: str) -> list[tuple[int, int, int, bytes]]:
        return await self._fetch(  # type: ignore[return-value]
            "SELECT seq, part, stream, data FROM run_output WHERE run_id = %s ORDER BY seq, part", (run_id,)
        )
