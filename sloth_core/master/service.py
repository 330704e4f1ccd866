"""The Master gRPC service: thin translation between the wire and the parts.

Each method authorizes the caller, calls the registry, the dispatcher, the
run history or the event bus, translates protobuf to and from their types,
and turns :class:`~sloth_core.errors.SlothError` into its status code and
reason (:func:`sloth_core.rpc_errors.abort`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
import grpc.aio

from sloth_core import bounds, errors
from sloth_core.master.admission import Admission
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
    async def require_admin_or_peer(self, context: grpc.aio.ServicerContext) -> Any: ...
    async def require_agent(self, context: grpc.aio.ServicerContext, name: str) -> Any: ...
    def ended_by_revocation(self) -> errors.SlothError | None: ...


def _who(identity: Any) -> str:
    kind = getattr(identity, "kind", "insecure")
    name = getattr(identity, "name", "")
    return f"{kind}:{name}" if name else kind


# Agents' calls are never shed as "busy": a refused heartbeat would turn a
# healthy agent offline.
AGENT_CALLS = frozenset({"Register", "Heartbeat", "Leave"})


def _admitted(service: Any, method: Callable[..., Any]) -> contextlib.AbstractContextManager[None]:
    if method.__name__ in AGENT_CALLS:
        return contextlib.nullcontext()
    return service._admission.call()


async def _abort_if_revoked(service: Any, context: grpc.aio.ServicerContext) -> None:
    """A call cancelled because its caller's certificate was revoked ends saying so."""
    exc = service._auth.ended_by_revocation()
    if exc is not None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await abort(context, exc)


def unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            with _admitted(self, method):
                return await method(self, request, context)
        except errors.SlothError as exc:
            await abort(context, exc)
        except asyncio.CancelledError:
            await _abort_if_revoked(self, context)
            raise

    return wrapper


def streaming(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            with _admitted(self, method):
                async for item in method(self, request, context):
                    yield item
        except errors.SlothError as exc:
            await abort(context, exc)
        except asyncio.CancelledError:
            await _abort_if_revoked(self, context)
            raise

    return wrapper


#: How long a call whose caller streams may take to send its opening message (callers send it at once).
OPENING_MESSAGE_S = 30.0


async def _opening_message(context: grpc.aio.ServicerContext) -> Any:
    """The call's first message, or a typed error: none in time, or one that does not decode."""
    from google.protobuf.message import DecodeError

    try:
        return await asyncio.wait_for(context.read(), OPENING_MESSAGE_S)
    except TimeoutError:
        raise errors.UsageError(
            f"the call must start with its request; none came within {OPENING_MESSAGE_S:g} s"
        ) from None
    except DecodeError:
        raise errors.InvalidArgumentError("the call's first message is not a valid request") from None


def opened_by_a_message(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """:func:`streaming`, for a call whose caller streams too: ``method`` gets the call's first message.

    It is read before anything may refuse the call (busy, not an admin): a
    refusal that crosses the caller's first write reaches the caller as
    INTERNAL "Internal error from Core" (grpc 1.85), not as its reason. A
    caller that sends nothing is refused after :data:`OPENING_MESSAGE_S`.
    """
    inner = streaming(method)

    @functools.wraps(method)
    async def wrapper(self: Any, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            first = await _opening_message(context)
        except errors.SlothError as exc:
            await abort(context, exc)
        async for item in inner(self, first, context):
            yield item

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
        limits: bounds.Limits = bounds.DEFAULT_LIMITS,
        admission: Admission | None = None,
        store_health: Callable[[], StoreHealth],
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._history = history
        self._bus = bus
        self._auth = auth
        self._clock = clock
        self._limits = limits
        self._admission = admission or Admission()
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
        bounds.check_command(request.command, self._limits)
        bounds.check_run_environment(request.env, request.cwd, self._limits)
        # Closed at once when the caller hangs up, so its runs are cancelled now.
        async with contextlib.aclosing(self._dispatcher.run(request, _who(identity))) as events:
            async for event in events:
                yield event

    @opened_by_a_message
    async def Interact(self, first: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        identity = await self._auth.require_admin(context)  # terminal sessions too: operators are admins
        if first is grpc.aio.EOF or not first.HasField("request"):
            raise errors.UsageError("an Interact call starts with its run request")
        request = first.request
        if not request.stdin and not request.HasField("pty"):
            raise errors.UsageError("Interact is for runs that take input (stdin or a terminal); use Run")
        bounds.check_command(request.command, self._limits)
        bounds.check_run_environment(request.env, request.cwd, self._limits)
        if request.HasField("pty"):
            bounds.check_terminal(request.pty, self._limits)

        async def read() -> pb.RunInput | None:
            message = await context.read()
            if message is grpc.aio.EOF:
                return None
            if not message.HasField("input"):
                raise errors.UsageError("after its request, an Interact call carries input only")
            bounds.check_run_input(message.input, self._limits)
            return message.input

        # Closed at once when the caller hangs up, so its runs are cancelled now.
        async with contextlib.aclosing(self._dispatcher.interact(request, _who(identity), read)) as events:
            async for event in events:
                yield event

    @unary
    async def CancelRun(self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext) -> pb.CancelRunResponse:
        await self._auth.require_admin_or_peer(context)
        return pb.CancelRunResponse(cancelled=await self._history.cancel(request.id))

    @unary
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        await self._auth.require_admin(context)
        records = await self._history.list_runs(
            agent=request.agent, status=request.status, job_id=request.job_id, limit=request.limit
        )
        infos = (bounds.listed_run(run_info(r)) for r in records)
        return pb.ListRunsResponse(runs=bounds.page(infos, pb.RunInfo.ByteSize))

    @unary
    async def GetRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.RunInfo:
        await self._auth.require_admin(context)
        return run_info(await self._history.get_run(request.run_id))

    @streaming
    async def StreamRun(self, request: pb.StreamRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        await self._auth.require_admin_or_peer(context)
        run_id = await self._history.resolve_run_id(request.run_id)
        stream = await self._history.follow_elsewhere(run_id) if request.follow else None
        if stream is None:
            stream = self._dispatcher.stream_run(run_id, request.follow)
        async with contextlib.aclosing(stream) as events:
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
                active_runs=[bounds.listed_run(r) for r in self._dispatcher.active_runs()],
                server_time=self._clock(),
                store=self._store_health().to_proto(),
            )
            # Other masters' runs come from the store (an await): one that ends
            # meanwhile is in the subscription too, and a console takes either order.
            snapshot.active_runs.extend(bounds.listed_run(r) for r in await self._history.active_elsewhere())
            yield pb.WatchBatch(events=[pb.WatchEvent(snapshot=snapshot)])
            async for batch in sub.batches():
                yield pb.WatchBatch(events=batch)
        finally:
            sub.close()
