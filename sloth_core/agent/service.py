"""The Agent gRPC service: executes what its master asks, nothing else.

Thin: it checks that the caller is the master, hands the request to the
:class:`~sloth_core.agent.runs.RunTable`, and sends typed errors back with
their status and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc.aio

from sloth_core import errors
from sloth_core.agent.runs import RunTable
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.rpc_errors import abort

log = logging.getLogger(__name__)


class AgentService(sloth_pb2_grpc.AgentServicer):
    def __init__(self, runs: RunTable, auth: Any, on_shutdown: Callable[[], None]) -> None:
        self._runs = runs
        self._auth = auth
        self._on_shutdown = on_shutdown

    async def Execute(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        await self._auth.require_master(context)
        try:
            events = self._runs.start_request(request)
        except errors.SlothError as exc:
            await abort(context, exc)
        # Closed here, not left to the garbage collector: a run the master
        # hung up on is killed before this call ends.
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        await self._auth.require_master(context)
        return pb.CancelResponse(found=self._runs.cancel(request.run_id))

    async def Shutdown(self, request: pb.ShutdownRequest, context: grpc.aio.ServicerContext) -> pb.ShutdownResponse:
        await self._auth.require_master(context)
        log.info("the master asked this agent to shut down")
        # Answer first; stop once the reply is on its way.
        asyncio.get_running_loop().call_later(0.1, self._on_shutdown)
        return pb.ShutdownResponse()
