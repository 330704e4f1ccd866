"""Write-behind storage: what both backends share.

The master never waits for a write: :meth:`save_runs` and friends queue rows
(:mod:`.pending`) and one writer task applies them, as one transaction per
pass, so a burst of 1,000 finishing runs costs one commit. When a pass fails
its records are retried one by one, so one bad statement never takes the rest
of its batch with it; records the store cannot take *now* (disk full, server
down) stay queued and are retried with backoff until it can. The first
failure of an episode is logged with its cause, and so is the recovery; in
between, :meth:`health` says what operators need to know.

A read first writes what is queued, so it sees every write made before it
(prunes and deletes included). While the store is failing it does not wait
for that: queued records are overlaid on what the store returns, so ``runs
list`` still shows every run the master acknowledged, saved yet or not.
A backend provides the ``_db_*`` methods, :meth:`_apply`, :meth:`_apply_one`
and the classification of its errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from sloth_core.errors import HistoryUnsavedError, StorageError
from sloth_core.storage import AgentRecord, RunRecord, StoredChunk
from sloth_core.storage.health import StoreHealth
from sloth_core.storage.pending import DEFAULT_QUEUE_LIMIT, Batch, PendingWrites, Row

log = logging.getLogger("sloth_core.storage")

RETRY_MIN_S = 0.25
RETRY_MAX_S = 2.0
# Isolating a failed pass: after this many records in a row fail for a
# reason that is the store's (not the record's), keep the rest for later.
GIVE_UP_AFTER = 3

RUN_COLUMNS = [f.name for f in fields(RunRecord)]
AGENT_COLUMNS = [f.name for f in fields(AgentRecord)]
# attrgetter, not dataclasses.astuple: astuple deep-copies, and was a tenth
# of the master's time while 1,000 runs finished.
run_row = operator.attrgetter(*RUN_COLUMNS)
_agent_fields = operator.attrgetter(*AGENT_COLUMNS)
_LABELS = AGENT_COLUMNS.index("labels")


def agent_row(record: AgentRecord) -> Row:
    values = list(_agent_fields(record))
    values[_LABELS] = json.dumps(record.labels, sort_keys=True)
    return tuple(values)


def agent_from_row(row: Row) -> AgentRecord:
    values = dict(zip(AGENT_COLUMNS, row, strict=True))
    values["labels"] = json.loads(values["labels"])
    return AgentRecord(**values)


def run_filter(agent: str, status: int, job_id: str, placeholder: str) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its arguments for :meth:`list_runs`'s filters."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("agent", agent), ("status", status), ("job_id", job_id)):
        if value:
            where.append(f"{column} = {placeholder}")
            args.append(value)
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


def schema_too_new(found: int, known: int, where: str) -> StorageError:
    return StorageError(
        f"the history store {where} has schema version {found}, newer than this master "
        f"understands ({known}): a newer sloth-runner has used it; upgrade this one"
    )


class QueuedStorage:
    """The :class:`~sloth_core.storage.Storage` write path, health and read overlay."""

    def __init__(self, where: str, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.where = where  # for messages: never holds a password
        self._queue = PendingWrites(queue_limit)
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._cause = ""
        self._episode_dropped = 0  # the drop count when the episode began
        self._drops_logged = False
        self._refusal_logged = False
        self._listeners: list[Callable[[StoreHealth], None]] = []
        self._last_told: tuple[Any, ...] = ()
        self._closed = False

    # ------------------------------------------------------------ backend hooks

    async def _open_db(self) -> None:
        raise NotImplementedError

    async def _close_db(self) -> None:
        raise NotImplementedError

    async def _apply(self, batch: Batch) -> None:
        """Write the whole batch in one transaction, or raise and write nothing."""
        raise NotImplementedError

    async def _apply_one(self, kind: str, key: Any, value: Any) -> None:
        """Write one record in a transaction of its own."""
        alone = Batch()
        alone.add_item(kind, key, value)
        await self._apply(alone)

    def _transient(self, exc: BaseException) -> bool:
        """Is this the store's trouble (retry later), not the record's?"""
        raise NotImplementedError

    def _cause_of(self, exc: BaseException) -> str:
        """One line naming the store and what went wrong (never a password)."""
        text = str(exc).strip()
        return f"{self.where}: {text.splitlines()[0] if text else type(exc).__name__}"

    async def _db_load_agents(self) -> list[Row]:
        raise NotImplementedError

    async def _db_mark_unfinished(self, status: int, error: str, now: float, drivers: list[str] | None) -> int:
        raise NotImplementedError

    async def _db_get_run(self, run_id: str) -> Row | None:
        raise NotImplementedError

    async def _db_runs_in_flight(self, other_than: str) -> list[Row]:
        raise NotImplementedError

    async def _db_list_runs(self, agent: str, status: int, job_id: str, limit: int) -> list[Row]:
        raise NotImplementedError

    async def _db_ids_with_prefix(self, column: str, prefix: str, limit: int) -> list[str]:
        raise NotImplementedError

    async def _db_read_output(self, run_id: str) -> list[tuple[int, int, int, bytes]]:
        raise NotImplementedError  # (seq, part, stream, data)

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            await self._open_db()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot open the history store: {self._cause_of(exc)}") from None
        self._writer = asyncio.create_task(self._write_loop(), name="storage writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._closing.set()
            self._wake.set()
            await self._writer
            self._writer = None
        await self._write_pass()
        left = self._queue.count()
        if left:
            log.error("%d records of history could not be saved before the master stopped: %s", left, self._cause)
        await self._close_db()

    async def flush(self) -> None:
        """One write pass now (it may fail: see :meth:`health`).

        Shielded: a caller that is cancelled (a client hanging up) does not
        cut a pass short; it finishes on its own.
        """
        await asyncio.shield(self._write_pass())

    # ------------------------------------------------------------ health

    def health(self) -> StoreHealth:
        return StoreHealth(
            store=self.where,
            failing=self._failing_since is not None,
            cause=self._cause if self._failing_since is not None else "",
            queued=self._queue.count(),
            dropped=self._queue.dropped,
            refusing_runs=self._queue.full(),
        )

    def on_health_change(self, listener: Callable[[StoreHealth], None]) -> None:
        """Call ``listener`` (on the master's loop) when the health changes."""
        self._listeners.append(listener)

    def check_accepting(self) -> None:
        """Raise :class:`HistoryUnsavedError` when no more runs can be recorded."""
        if not self._queue.full():
            return
        health = self.health()
        if not self._refusal_logged:
            self._refusal_logged = True
            log.error("refusing new runs: %d run records wait to be saved (%s)", health.queued, self._cause)
            self._tell(health)
        raise HistoryUnsavedError(health.warning())

    def _tell(self, health: StoreHealth | None = None) -> None:
        health = health or self.health()
        key = (health.failing, health.cause, health.dropped, health.refusing_runs, health.queued if health.failing else 0)
        if key == self._last_told:
            return
        self._last_told = key
        for listener in list(self._listeners):
            try:
                listener(health)
            except Exception:
                log.exception("a store health listener failed")

    # ------------------------------------------------------------ writes (never wait)

    def _kick(self) -> None:
        if self._failing_since is None:
            self._wake.set()

    def save_agent(self, record: AgentRecord) -> None:
        self.save_agents([record])

    def save_agents(self, records: list[AgentRecord]) -> None:
        for record in records:
            self._queue.put_agent(record.name, agent_row(record))
        self._kick()

    def delete_agent(self, name: str) -> None:
        self._queue.put_agent(name, None)
        self._kick()

    def save_run(self, record: RunRecord) -> None:
        self.save_runs([record])

    def save_runs(self, records: list[RunRecord]) -> None:
        self._queue.put_runs([run_row(r) for r in records])
        self._kick()

    def append_output(self, run_id: str, chunks: list[StoredChunk]) -> None:
        self._queue.put_output([(run_id, c.seq, c.part, c.stream, c.data) for c in chunks])
        self._kick()

    def prune_runs(self, agent: str, keep: int) -> None:
        self._queue.put_prune(agent, keep)
        self._kick()

    # ------------------------------------------------------------ the writer

    async def _write_loop(self) -> None:
        delay = RETRY_MIN_S
        while not self._closing.is_set():
            if self._failing_since is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                ok = await self._write_pass()
            except Exception:  # the writer must outlive any bug in one pass
                log.exception("history write pass failed")
                ok = False
            delay = RETRY_MIN_S if ok else min(delay * 2, RETRY_MAX_S)
            if ok and self._queue.count():
                # Records that came while the store was failing did not wake us.
                self._wake.set()

    async def _write_pass(self) -> bool:
        async with self._pass_lock:
            batch = self._queue.take()
            failed: Batch | None = None
            cause: str | None = None
            try:
                if batch:
                    try:
                        await self._apply(batch)
                    except Exception as exc:
                        failed, cause = await self._isolate(batch, exc)
            except BaseException:
                # Interrupted (cancelled, or a bug): nothing is confirmed, so all
                # of it goes back; writing a record twice is harmless (upserts).
                self._queue.done(batch)
                raise
            if cause is not None:
                self._begin_or_continue_episode(cause)
            self._queue.done(failed)
            if cause is None and self._failing_since is not None:
                self._end_episode()
            elif cause is not None:
                self._note_drops()
            self._tell()
            return cause is None

    async def _isolate(self, batch: Batch, exc: Exception) -> tuple[Batch | None, str | None]:
        """Retry each record alone: write what the store takes, keep what it can't take now."""
        failed = Batch()
        cause = self._cause_of(exc) if self._transient(exc) else None
        in_a_row = 0
        items = batch.items()
        for index, (kind, key, value) in enumerate(items):
            if in_a_row >= GIVE_UP_AFTER:
                for rest in items[index:]:
                    failed.add_item(*rest)
                break
            try:
                await self._apply_one(kind, key, value)
                in_a_row = 0
            except Exception as one_exc:
                if self._transient(one_exc):
                    failed.add_item(kind, key, value)
                    cause = self._cause_of(one_exc)
                    in_a_row += 1
                else:
                    self._refused(kind, key, one_exc)
        if not failed:
            return None, None
        return failed, cause or self._cause_of(exc)

    def _refused(self, kind: str, key: Any, exc: Exception) -> None:
        # The record itself is bad: retrying cannot help. Loud, and counted.
        self._queue.dropped += 1
        log.error("the history store refused %s %s, which is not saved: %s", kind, key, self._cause_of(exc))

    def _begin_or_continue_episode(self, cause: str) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self._episode_dropped = self._queue.dropped
            self._drops_logged = self._refusal_logged = False
            self._queue.bounded = True
            log.error(
                "history is not being saved: %s; %d records queued, retrying until the store takes them",
                cause, self._queue.count(),
            )
        elif cause != self._cause:
            log.error("history is still not being saved: %s", cause)
        self._cause = cause

    def _note_drops(self) -> None:
        if not self._drops_logged and self._queue.dropped > self._episode_dropped:
            self._drops_logged = True
            log.error(
                "the history queue is full (%d records): dropping the oldest output, keeping every run record",
                self._queue.limit,
            )

    def _end_episode(self) -> None:
        assert self._failing_since is not None
        took = time.monotonic() - self._failing_since
        dropped = self._queue.dropped - self._episode_dropped
        self._failing_since = None
        self._queue.bounded = False
        log.warning(
            "history is being saved again after %.1f s; %d output records were dropped meanwhile (the cause was: %s)",
            took, dropped, self._cause,
        )
        self._cause = ""

    # ------------------------------------------------------------ reads (queued records included)

    async def _read(self, what: str, query: Callable[[], Awaitable[Any]]) -> Any:
        try:
            if self._failing_since is None:
                await self.flush()
            return await query()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot read {what} from the history store: {self._cause_of(exc)}") from None

    async def load_agents(self) -> list[AgentRecord]:
        rows = await self._read("agents", lambda: self._db_load_agents())
        by_name = {row[0]: row for row in rows}
        for name, row in self._queue.agent_rows().items():
            if row is None:
                by_name.pop(name, None)
            else:
                by_name[name] = row
        return [agent_from_row(row) for row in by_name.values()]

    async def mark_unfinished(self, status: int, error: str, now: float, drivers: list[str] | None = None) -> int:
        await self.flush()
        try:
            return await self._db_mark_unfinished(status, error, now, drivers)
        except Exception as exc:
            raise StorageError(f"cannot write to the history store: {self._cause_of(exc)}") from None

    async def get_run(self, run_id: str) -> RunRecord | None:
        stored = await self._read("a run", lambda: self._db_get_run(run_id))
        row = self._queue.run_rows().get(run_id) or stored
        return RunRecord(*row) if row else None

    async def runs_in_flight(self, *, other_than: str) -> list[RunRecord]:
        from sloth_core.proto import sloth_pb2 as pb

        stored = await self._read("runs in flight", lambda: self._db_runs_in_flight(other_than))
        by_id = {row[0]: row for row in stored}
        by_id.update(self._queue.run_rows())
        records = (RunRecord(*row) for row in by_id.values())
        return [r for r in records if r.status in (pb.RUN_PENDING, pb.RUN_RUNNING) and r.driver != other_than]

    async def list_runs(
        self, *, agent: str = "", status: int = 0, job_id: str = "", limit: int = 50
    ) -> list[RunRecord]:
        stored = await self._read("runs", lambda: self._db_list_runs(agent, status, job_id, limit))
        queued = self._queue.run_rows()
        by_id = {row[0]: row for row in stored}
        for run_id, row in queued.items():
            record = RunRecord(*row)
            if (agent and record.agent != agent) or (status and record.status != status) or (
                job_id and record.job_id != job_id
            ):
                by_id.pop(run_id, None)  # it changed since it was stored
                continue
            by_id[run_id] = row
        records = [RunRecord(*row) for row in by_id.values()]
        records.sort(key=lambda r: (-r.created_at, r.run_id))
        return records[:limit]

    async def resolve_run_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids that start with ``prefix``, in order, at most ``limit``."""
        return await self._ids_with_prefix("run_id", 0, prefix, limit)

    async def resolve_job_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Job ids that start with ``prefix``, in order, at most ``limit``."""
        return await self._ids_with_prefix("job_id", 1, prefix, limit)

    async def _ids_with_prefix(self, column: str, index: int, prefix: str, limit: int) -> list[str]:
        if not prefix:
            return []
        stored = await self._read("run ids", lambda: self._db_ids_with_prefix(column, prefix, limit))
        queued = {row[index] for row in self._queue.run_rows().values() if str(row[index]).startswith(prefix)}
        return sorted({*stored, *queued})[:limit]

    async def read_output(self, run_id: str) -> list[StoredChunk]:
        rows = await self._read("output", lambda: self._db_read_output(run_id))
        chunks = {(seq, part): StoredChunk(seq, stream, bytes(data), part) for seq, part, stream, data in rows}
        for _, seq, part, stream, data in self._queue.output_rows(run_id):
            chunks[(seq, part)] = StoredChunk(seq, stream, data, part)
        return [chunks[k] for k in sorted(chunks)]

