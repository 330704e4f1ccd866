"""Reaching the master that drives a run: cancel and follow from any master of the cluster.

A run lives on the master that started it (its ``driver`` in the store):
that master holds the agent's call and the live output. Another master that
is asked to cancel or follow it relays the request there, master to master
over mutual TLS with its own master identity (the other master accepts it
as it accepts an admin, for these calls only). The driver's address is its
lease row (:mod:`.lease`); a run whose driver died is ended by the lease
sweeper, so there is then nothing to relay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord, Storage

if TYPE_CHECKING:
    from sloth_core.master.lease import MasterLease
    from sloth_core.transport import TLSConfig

log = logging.getLogger(__name__)

RELAY_TIMEOUT_S = 10.0
_UNFINISHED = (pb.RUN_PENDING, pb.RUN_RUNNING)


class Peers:
    """The other masters of the cluster, as far as runs they drive are concerned."""

    def __init__(self, lease: MasterLease, storage: Storage, tls: TLSConfig | None) -> None:
        self._lease = lease
        self._storage = storage
        self._tls = tls

    async def driver_address(self, record: RunRecord) -> str | None:
        """The address of the live master other than us that drives ``record``, if any."""
        if record.status not in _UNFINISHED or not record.driver or record.driver == self._lease.master_id:
            return None
        for master in await self._lease.masters():
            if master.id == record.driver and master.alive:
                return master.address
        return None

    async def cancel(self, kind: str, full_id: str) -> list[str]:
        """Ask the masters driving ``full_id`` (a run, or a job's runs) to cancel it; the ids cancelled."""
        if kind == "job":
            records = await self._storage.list_runs(job_id=full_id, limit=10_000)
        else:
            record = await self._storage.get_run(full_id)
            records = [record] if record is not None else []
        addresses = {address for r in records if (address := await self.driver_address(r)) is not None}
        cancelled: list[str] = []
        for address in sorted(addresses):
            async with self._channel(address) as stub:
                try:
                    reply = await stub.CancelRun(pb.CancelRunRequest(id=full_id), timeout=RELAY_TIMEOUT_S)
                except Exception as exc:
                    raise _relay_error(exc, address) from None
            cancelled += list(reply.cancelled)
        return cancelled

    async def follow(self, record: RunRecord) -> AsyncIterator[pb.RunEvent] | None:
        """The driving master's live stream of ``record`` (None when it is ours, finished, or orphaned)."""
        address = await self.driver_address(record)
        if address is None:
            return None
        return self._relay_stream(address, record.run_id)

    async def _relay_stream(self, address: str, run_id: str) -> AsyncIterator[pb.RunEvent]:
        async with self._channel(address) as stub:
            call = stub.StreamRun(pb.StreamRunRequest(run_id=run_id, follow=True))
            try:
                async for event in call:
                    yield event
            except Exception as exc:
                raise _relay_error(exc, address) from None
            finally:
                call.cancel()

    @contextlib.asynccontextmanager
    async def _channel(self, address: str) -> AsyncIterator[Any]:
        from sloth_core import transport
        from sloth_core.proto import sloth_pb2_grpc
        from sloth_core.security.names import MASTER_SERVER_NAME

        channel = transport.open_channel(address, self._tls, server_name=MASTER_SERVER_NAME)
        try:
            yield sloth_pb2_grpc.MasterStub(channel)
        finally:
            await channel.close(grace=None)


def _relay_error(exc: BaseException, address: str) -> errors.SlothError:
    import grpc.aio

    from sloth_core.rpc_errors import error_from_rpc

    if isinstance(exc, grpc.aio.AioRpcError):
        return error_from_rpc(exc, address, what="the master driving this run")
    if isinstance(exc, errors.SlothError):
        return exc
    return errors.MasterUnreachableError(f"cannot reach the master driving this run at {address}: {exc}")
