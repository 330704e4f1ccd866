"""Persistence of the master's state, behind a small interface.

The master talks to :class:`Storage`; SQLite (:mod:`.sqlite`) is the embedded
default, PostgreSQL (:mod:`.postgres`) the server store that several masters
can share. :func:`open_store` picks one from ``--store``. Both write behind
(:mod:`.queued`): writes never wait, failures are retried, and
:meth:`Storage.health` says whether history is being saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sloth_core.storage.health import StoreHealth

STORE_ENV = "SLOTH_RUNNER_STORE"


@dataclass
class AgentRecord:
    name: str
    address: str
    version: str = ""
    hostname: str = ""
    os: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    status: int = 0  # sloth_pb2.AgentStatus
    registered_at: float = 0.0
    last_seen: float = 0.0
    instance_id: str = ""
    # Its machine facts (a serialized sloth.v1.Facts), stored only by masters
    # of a cluster so that every master shows them; b"" otherwise.
    facts: bytes = b""


@dataclass
class RunRecord:
    run_id: str
    job_id: str
    agent: str
    command: str
    requested_by: str
    status: int  # sloth_pb2.RunStatus
    created_at: float
    timeout_s: float = 0.0
    exit_code: int = -1
    signal: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    error: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    dropped_bytes: int = 0
    # The master that drives the run (its lease id); "" with one master.
    driver: str = ""
    kind: int = 0  # sloth_pb2.RunKind: a command, or a terminal session (`agent shell`)


@dataclass
class StoredChunk:
    seq: int
    stream: int
    data: bytes
    # 0: kept as part of the head; 1: part of the tail, after any dropped
    # bytes. A chunk straddling the head's end is stored as both.
    part: int = 0


class Storage(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def load_agents(self) -> list[AgentRecord]: ...
    def save_agent(self, record: AgentRecord) -> None: ...
    def save_agents(self, records: list[AgentRecord]) -> None: ...
    def delete_agent(self, name: str) -> None: ...

    def save_run(self, record: RunRecord) -> None: ...
    def save_runs(self, records: list[RunRecord]) -> None: ...
    def append_output(self, run_id: str, chunks: list[StoredChunk]) -> None: ...
    def prune_runs(self, agent: str, keep: int) -> None: ...
    async def mark_unfinished(self, status: int, error: str, now: float, drivers: list[str] | None = None) -> int:
        """Close runs still pending or running: all of them, or those of ``drivers`` (masters that died)."""
    async def runs_in_flight(self, *, other_than: str) -> list[RunRecord]:
        """Runs pending or running that a master other than ``other_than`` drives (several masters)."""
    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def list_runs(
        self, *, agent: str = "", status: int = 0, job_id: str = "", limit: int = 50
    ) -> list[RunRecord]: ...
    async def resolve_run_prefix(self, prefix: str, limit: int = 10) -> list[str]: ...
    async def resolve_job_prefix(self, prefix: str, limit: int = 10) -> list[str]: ...
    async def read_output(self, run_id: str) -> list[StoredChunk]: ...
    async def flush(self) -> None: ...

    def health(self) -> StoreHealth: ...
    def on_health_change(self, listener: Callable[[StoreHealth], None]) -> None: ...
    def check_accepting(self) -> None:
        """Raise :class:`~sloth_core.errors.HistoryUnsavedError` when new runs cannot be recorded."""


def open_store(url: str | None, data_dir: Path, queue_limit: int | None = None) -> Storage:
    """The store ``--store`` (or ``$SLOTH_RUNNER_STORE``) names; SQLite in ``data_dir`` by default.

    ``queue_limit``: records kept for retry while the store fails (see :mod:`.pending`).
    """
    from sloth_core.errors import UsageError
    from sloth_core.storage.pending import DEFAULT_QUEUE_LIMIT

    limit = queue_limit or DEFAULT_QUEUE_LIMIT

    url = url or os.environ.get(STORE_ENV, "")
    if not url:
        from sloth_core.storage.sqlite import SQLiteStorage

        return SQLiteStorage(data_dir / "master.db", limit)
    if url.startswith(("postgresql://", "postgres://")):
        from sloth_core.storage.postgres import PostgresStorage

        return PostgresStorage(url, limit)
    if url.startswith("sqlite:///"):
        from sloth_core.storage.sqlite import SQLiteStorage

        return SQLiteStorage(Path(url.removeprefix("sqlite://")), limit)
    raise UsageError(f"unknown store {url.split('://')[0]!r}: use postgresql://USER@HOST/DB (or nothing, for SQLite)")
