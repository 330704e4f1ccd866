"""Watch across masters: run events travel between masters by PostgreSQL ``LISTEN/NOTIFY``.

Each master sends its agents' changes and its runs' starts and ends on the channel ``sloth_events``
(output never: a notification carries at most 8,000 bytes, and output is
fetched from the master that drives the run) and re-publishes what the
others send on its own :class:`~.events.EventBus`, so every console's Watch
shows the whole cluster's runs. Agents' changes travel the same way and are
applied to the registry (a deleted agent is dropped everywhere at once); the
lease's mirror of the store (:mod:`.lease`) repairs whatever was missed.

A notification sent while a listener is disconnected is never delivered to
it; after a reconnect the listener asks ``on_reconnect`` to re-read the state
it follows. Listening uses a connection of its own (psycopg waits other
queries on a connection that iterates its notifications); sending uses
another.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sloth_core.master.events import EventBus
from sloth_core.proto import sloth_pb2 as pb

log = logging.getLogger(__name__)

CHANNEL = "sloth_events"
#: PostgreSQL's limit is 8,000 bytes: a payload stays below it.
MAX_PAYLOAD = 7_900
MAX_ID = 40  # the sender's id and a separator
OUTBOX_LIMIT = 10_000
RECONNECT_S = 1.0
CONNECT_TIMEOUT_S = 5


def fit(event: pb.WatchEvent) -> pb.WatchEvent | None:
    """The event as it may travel: a long command is left out; None if even that cannot fit."""
    if _encoded_size(event.ByteSize()) <= MAX_PAYLOAD - MAX_ID:
        return event
    trimmed = pb.WatchEvent()
    trimmed.CopyFrom(event)
    for kind in ("started", "finished"):
        if trimmed.run.HasField(kind):
            getattr(trimmed.run, kind).command = ""
    return trimmed if _encoded_size(trimmed.ByteSize()) <= MAX_PAYLOAD - MAX_ID else None


def pack(master_id: str, events: list[pb.WatchEvent]) -> tuple[list[str], int]:
    """As many of ``events`` (each already :func:`fit`) as fit in one payload, and how many."""
    batch = pb.WatchBatch()
    taken = 0
    for event in events:
        batch.events.append(event)
        if taken and _encoded_size(batch.ByteSize()) > MAX_PAYLOAD - MAX_ID:
            del batch.events[-1]
            break
        taken += 1
    return [f"{master_id} {base64.b64encode(batch.SerializeToString()).decode()}"], taken


def encode(master_id: str, event: pb.WatchEvent) -> str | None:
    """One event as a payload (``<master id> <base64 of a WatchBatch>``), or None if it cannot fit."""
    fitted = fit(event)
    return pack(master_id, [fitted])[0][0] if fitted is not None else None


def decode(payload: str) -> tuple[str, list[pb.WatchEvent]] | None:
    sender, _, body = payload.partition(" ")
    try:
        return sender, list(pb.WatchBatch.FromString(base64.b64decode(body)).events)
    except (ValueError, TypeError):
        return None


def _encoded_size(raw: int) -> int:
    return 4 * ((raw + 2) // 3)


class ClusterFeed:
    """Sends this master's run events to the others and publishes theirs here."""

    def __init__(
        self,
        url: str,
        master_id: str,
        bus: EventBus,
        *,
        on_agent: Callable[[pb.AgentEvent], None] | None = None,
        on_run: Callable[[pb.RunEvent], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._master_id = master_id
        self._bus = bus
        self._on_reconnect = on_reconnect
        self._on_agent = on_agent
        self._on_run = on_run
        self._outbox: asyncio.Queue[pb.WatchEvent] = asyncio.Queue(OUTBOX_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self.dropped = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="cluster-listen"),
            asyncio.create_task(self._send(), name="cluster-send"),
        ]
        self._bus.outbound = self.send
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), CONNECT_TIMEOUT_S)

    def send(self, event: pb.WatchEvent) -> None:
        fitted = fit(event)
        if fitted is None:
            return
        try:
            self._outbox.put_nowait(fitted)
        except asyncio.QueueFull:
            self.dropped += 1  # the store is away; watchers re-read after it is back

    async def close(self) -> None:
        self._bus.outbound = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if not first and self._on_reconnect is not None:
                        self._on_reconnect()  # what was sent while we were away is lost: re-read
                    first = False
                    async for note in conn.notifies():
                        decoded = decode(note.payload)
                        if decoded is not None and decoded[0] != self._master_id:
                            for event in decoded[1]:
                                self._receive(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster events: listening failed (%s); trying again", _first_line(exc))
            await asyncio.sleep(RECONNECT_S)

    def _receive(self, event: pb.WatchEvent) -> None:
        if event.HasField("agent"):
            if self._on_agent is not None:
                self._on_agent(event.agent)  # the registry applies it and tells its watchers
        else:
            if event.HasField("run") and self._on_run is not None:
                self._on_run(event.run)  # the runs in flight elsewhere, for Watch snapshots (remote_runs.py)
            self._bus.remote(event)

    async def _send(self) -> None:
        # Events queued meanwhile go together: a 1,000-agent job is a few
        # dozen notifications, not 2,000.
        conn: Any = None
        while True:
            events = [await self._outbox.get()]
            while not self._outbox.empty() and len(events) < 5000:
                events.append(self._outbox.get_nowait())
            payloads: list[str] = []
            while events:
                packed, taken = pack(self._master_id, events)
                payloads += packed
                events = events[taken:]
            try:
                if conn is None or conn.closed:
                    conn = await self._connect()
                async with conn.cursor() as cur:
                    await cur.executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, p) for p in payloads])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(payloads)
                log.warning("cluster events: sending failed (%s)", _first_line(exc))
                with contextlib.suppress(Exception):
                    if conn is not None:
                        await conn.close()
                conn = None
                await asyncio.sleep(RECONNECT_S)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
