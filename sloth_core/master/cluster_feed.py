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
#: PostgreSQL's limit is 8,000 bytes; the sender's id and a separator fit beside this.
MAX_PAYLOAD = 7_900
OUTBOX_LIMIT = 10_000
RECONNECT_S = 1.0
CONNECT_TIMEOUT_S = 5


def encode(master_id: str, event: pb.WatchEvent) -> str | None:
    """``<master id> <base64 of the event>``; a long command is left out; None if it cannot fit."""
    payload = f"{master_id} {base64.b64encode(event.SerializeToString()).decode()}"
    if len(payload) <= MAX_PAYLOAD:
        return payload
    trimmed = pb.WatchEvent()
    trimmed.CopyFrom(event)
    for kind in ("started", "finished"):
        if trimmed.run.HasField(kind):
            getattr(trimmed.run, kind).command = ""
    payload = f"{master_id} {base64.b64encode(trimmed.SerializeToString()).decode()}"
    return payload if len(payload) <= MAX_PAYLOAD else None


def decode(payload: str) -> tuple[str, pb.WatchEvent] | None:
    sender, _, body = payload.partition(" ")
    try:
        return sender, pb.WatchEvent.FromString(base64.b64decode(body))
    except (ValueError, TypeError):
        return None


class ClusterFeed:
    """Sends this master's run events to the others and publishes theirs here."""

    def __init__(
        self,
        url: str,
        master_id: str,
        bus: EventBus,
        *,
        on_agent: Callable[[pb.AgentEvent], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._master_id = master_id
        self._bus = bus
        self._on_reconnect = on_reconnect
        self._on_agent = on_agent
        self._outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX_LIMIT)
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
        payload = encode(self._master_id, event)
        if payload is None:
            return
        try:
            self._outbox.put_nowait(payload)
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
                            self._receive(decoded[1])
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
            self._bus.remote(event)

    async def _send(self) -> None:
        conn: Any = None
        while True:
            payload = await self._outbox.get()
            batch = [payload]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            try:
                if conn is None or conn.closed:
                    conn = await self._connect()
                async with conn.cursor() as cur:
                    await cur.executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, p) for p in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(batch)
                log.warning("cluster events: sending failed (%s)", _first_line(exc))
                with contextlib.suppress(Exception):
                    if conn is not None:
                        await conn.close()
                conn = None
                await asyncio.sleep(RECONNECT_S)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
