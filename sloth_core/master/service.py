"""The Master gRPC service: thin translation between the wire and the parts.

Each method authorizes the caller, calls the registry, the dispatcher, the
run history or the event bus, translates protobuf to and from their types,
and turns :class:`~sloth_core.errors.SlothError` into its status code and
reason (:func:`sloth_core.rpc_errors.abort`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
import grpc.aio

from sloth_core import errors
from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import EventBus
from sloth_core.master.history import RunHistory, run_info
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.rpc_errors import abort
from sloth_core.storage import StoreHealth


class Authorizer(Protocol):
    """Who may call what; see :mod:`sloth_core.security.identity`."""

    async def require_admin(self, context: grpc.aio.ServicerContext) -> Any: ...
    async def require_agent(self, context: grpc.aio.ServicerContext, name: str) -> Any: ...


def _who(identity: Any) -> str:
    kind = getattr(identity, "kind", "insecure")
    name = getattr(identity, "name", "")
    return f"{kind}:{name}" if name else kind


def unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except errors.SlothError as exc:
            await abort(context, exc)

    return wrapper


def streaming(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except errors.SlothError as exc:
            await abort(context, exc)

    return wrapper


class MasterService(sloth_pb2_grpc.MasterServicer):
    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        history: RunHistory,
        bus: EventBus,
        auth: Authorizer,
        *,
        clock: Callable[[], float],
        store_health: Callable[[], StoreHealth],
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._history = history
        self._bus = bus
        self._auth = auth
        self._clock = clock
        self._started_at = clock()
        self._store_health = store_health

    # ------------------------------------------------------------ operators' calls

    @unary
    async def ListAgents(self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext) -> pb.ListAgentsResponse:
        await self._auth.require_admin(context)
        return pb.ListAgentsResponse(agents=self._registry.all_info())

    @unary
    async def GetAgent(self, request: pb.AgentRef, context: grpc.aio.ServicerContext) -> pb.AgentInfo:
        await self._auth.require_admin(context)
        return self._registry.info(self._registry.require(request.name).name)

    @unary
    async def StopAgent(self, request: pb.AgentRef, context: grpc.aio.ServicerContext) -> pb.AgentInfo:
        await self._auth.require_admin(context)
        await self._dispatcher.stop_agent(request.name)
        return self._registry.info(request.name)

    @unary
    async def DeleteAgent(self, request: pb.AgentRef, context: grpc.aio.ServicerContext) -> pb.DeleteAgentResponse:
        await self._auth.require_admin(context)
        await self._dispatcher.delete_agent(request.name)
        return pb.DeleteAgentResponse()

    @streaming
    async def Run(self, request: pb.RunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        identity = await self._auth.require_admin(context)
        # Closed at once when the caller hangs up, so its runs are cancelled now.
        async with contextlib.aclosing(self._dispatcher.run(request, _who(identity))) as events:
            async for event in events:
                yield event

    @unary
    async def CancelRun(self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext) -> pb.CancelRunResponse:
        await self._auth.require_admin(context)
        return pb.CancelRunResponse(cancelled=await self._history.cancel(request.id))

    @unary
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        await self._auth.require_admin(context)
        records = await self._history.list_runs(
            agent=request.agent, status=request.status, job_id=request.job_id, limit=request.limit
        )
        return pb.ListRunsResponse(runs=[run_info(r) for r in records])

    @unary
    async def GetRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.RunInfo:
        await self._auth.require_admin(context)
        return run_info(await self._history.get_run(request.run_id))

    @streaming
    async def StreamRun(self, request: pb.StreamRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        await self._auth.require_admin(context)
        run_id = await self._history.resolve_run_id(request.run_id)
        async with contextlib.aclosing(self._dispatcher.stream_run(run_id, request.follow)) as events:
            async for event in events:
                yield event

    @unary
    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.MasterStatus:
        await self._auth.require_admin(context)
        from sloth_core import __version__

        return pb.MasterStatus(version=__version__, started_at=self._started_at, store=self._store_health().to_proto())

    @streaming
    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchBatch]:
        await self._auth.require_admin(context)
        # Subscribe and snapshot with no await in between: every later change
        # is in the subscription, every earlier one in the snapshot.
        sub = self._bus.subscribe(request.include_output)
        try:
            snapshot = pb.Snapshot(
                agents=self._registry.all_info(),
                active_runs=self._dispatcher.active_runs(),
                server_time=self._clock(),
                store=self._store_health().to_proto(),
            )
            yield pb.WatchBatch(events=[pb.WatchEvent(snapshot=snapshot)])
            async for batch in sub.batches():
                yield pb.WatchBatch(events=batch)
        finally:
            sub.close()
