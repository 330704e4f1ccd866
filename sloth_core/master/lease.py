"""Several masters on one PostgreSQL store: each master's lease, and the one sweeper.

Every master keeps a row in ``masters`` (its address, identity, start time,
how many agents it holds) whose ``lease_until`` it pushes forward every
:data:`REFRESH_S`. A master that dies stops doing so; once its lease has
run out (:data:`LEASE_S`), the sweeper marks the runs it drove ``lost`` and
the agents it held offline, and deletes its row. So a run never stays
"running" forever because its master was SIGKILLed, and a master that
restarts does not mark the runs of the others lost.

One master at a time sweeps: the holder of a session advisory lock on this
class's own connection (the lock dies with the connection, so a dead
master's lock passes to a survivor on its next try). Lease times use the
database's clock, so masters whose clocks disagree still agree on who died.
The same tick mirrors the store's agent rows into the registry, so every
master sees the agents the others hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord, Storage
from sloth_core.storage.queued import RUN_COLUMNS

log = logging.getLogger(__name__)

#: A master whose lease was not renewed for this long is dead (runs lost ≤ LEASE_S + REFRESH_S after).
LEASE_S = 9.0
REFRESH_S = 2.0
# pg_try_advisory_lock key of the sweeper: "sloth-sw" as a big-endian int64.
SWEEPER_LOCK = int.from_bytes(b"sloth-sw", "big", signed=True)
CONNECT_TIMEOUT_S = 5


def new_master_id() -> str:
    return f"m-{secrets.token_hex(5)}"


@dataclass(frozen=True)
class MasterRow:
    """One master of the cluster as ``master status`` shows it."""

    id: str
    address: str
    identity: str
    started_at: float
    agents: int
    alive: bool


class MasterLease:
    """This master's lease row, the sweeper lock, and the reaping of dead masters."""

    def __init__(
        self,
        url: str,
        storage: Storage,
        registry: Registry,
        *,
        master_id: str,
        address: str,
        identity: str,
        lease_s: float = LEASE_S,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.time,
        on_lost: Callable[[list[RunRecord]], None] | None = None,
    ) -> None:
        self._url = url
        self._on_lost = on_lost
        self._storage = storage
        self._registry = registry
        self.master_id = master_id
        self.address = address
        self.identity = identity
        self.started_at = clock()
        self._lease_s = lease_s
        self._refresh_s = refresh_s
        self._clock = clock
        self._conn: Any = None
        #: Whether this master holds the sweeper lock (sweeps liveness and reaps dead masters).
        self.sweeping = False

    async def start(self) -> None:
        """Take the lease before serving, so no run of ours ever looks orphaned."""
        await self._connect()
        await self._renew()

    async def run(self) -> None:
        """Renew, mirror, and sweep when we hold the lock; survive store outages."""
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                if self._conn is None or self._conn.closed:
                    self.sweeping = False  # the lock went with the connection
                    await self._connect()
                await self._renew()
                self._registry.mirror(await self._storage.load_agents())
                if not self.sweeping:
                    cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (SWEEPER_LOCK,))
                    self.sweeping = bool((await cur.fetchone())[0])
                    if self.sweeping:
                        log.info("this master (%s) now sweeps the cluster's liveness", self.master_id)
                if self.sweeping:
                    await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store blinked: keep trying, never die
                log.warning("cluster lease: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                await self._close()

    async def reap(self) -> tuple[int, int]:
        """Mark lost the runs of masters whose lease ran out, offline their agents; (runs, agents)."""
        now = self._clock()
        cur = await self._conn.execute(
            "UPDATE runs SET status = %s, finished_at = %s, "
            "error = 'its master stopped (lease expired) while this run was in flight' "
            "WHERE status IN (%s, %s) AND driver NOT IN "
            f"(SELECT id FROM masters WHERE lease_until >= now()) RETURNING {', '.join(RUN_COLUMNS)}",
            (pb.RUN_LOST, now, pb.RUN_PENDING, pb.RUN_RUNNING),
        )
        ended = [RunRecord(*row) for row in await cur.fetchall()]
        lost = len(ended)
        if ended and self._on_lost is not None:
            self._on_lost(ended)  # its master cannot say they ended: we do, to every console
        # last_seen is the masters' clock (epoch seconds); the deadline as the registry reckons it
        # for a fleet of this size (big fleets beat rarely).
        cur = await self._conn.execute("SELECT count(*) FROM agents WHERE status = %s", (pb.AGENT_ONLINE,))
        online = (await cur.fetchone())[0]
        deadline = now - self._registry.silence_limit(online)
        cur = await self._conn.execute(
            "UPDATE agents SET status = %s WHERE status = %s AND last_seen < %s RETURNING name",
            (pb.AGENT_OFFLINE, pb.AGENT_ONLINE, deadline),
        )
        offline = [row[0] for row in await cur.fetchall()]
        cur = await self._conn.execute("DELETE FROM masters WHERE lease_until < now() RETURNING id, address")
        for master_id, address in await cur.fetchall():
            log.warning("master %s at %s stopped renewing its lease; its runs in flight are lost", master_id, address)
        if lost:
            log.warning("marked %d run(s) lost: their master stopped", lost)
        if offline:
            log.warning("agents offline (no heartbeat on any master): %s", ", ".join(sorted(offline)))
        return lost, len(offline)

    async def masters(self) -> list[MasterRow]:
        """Every master of the cluster, this one included."""
        cur = await self._conn.execute(
            "SELECT id, address, identity, started_at, agents, lease_until >= now() FROM masters ORDER BY started_at"
        )
        return [MasterRow(*row) for row in await cur.fetchall()]

    async def close(self) -> None:
        """Give the lease back at once: a clean stop needs no expiry."""
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(Exception):
                await self._conn.execute("DELETE FROM masters WHERE id = %s", (self.master_id,))
        await self._close()

    async def _renew(self) -> None:
        await self._conn.execute(
            "INSERT INTO masters (id, address, identity, started_at, lease_until, agents) "
            "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s) "
            "ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until, agents = EXCLUDED.agents",
            (self.master_id, self.address, self.identity, self.started_at, self._lease_s,
             self._registry.connected_here()),
        )

    async def _connect(self) -> None:
        import psycopg

        self._conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )

    async def _close(self) -> None:
        self.sweeping = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None
