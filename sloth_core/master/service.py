"""The Master gRPC service: thin translation between the wire and the parts.

Each method authorizes the caller, calls the registry or the dispatcher, and
turns :class:`~sloth_core.errors.SlothError` into a meaningful status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
import grpc.aio

from sloth_core import bounds, errors
from sloth_core.master.admission import Admission
from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import BATCH_OUTPUT_BYTES, EventBus
from sloth_core.master.history import run_info
from sloth_core.master.registry import Registry
from sloth_core.names import validate_agent_name
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.rpc_errors import abort
from sloth_core.storage import Storage

log = logging.getLogger(__name__)

DEFAULT_RUNS_LIMIT = 50
WATCH_BATCH_MAX = 5000
WATCH_MIN_INTERVAL_S = 0.02
MAX_RUNS_LIMIT = 10_000

class Authorizer(Protocol):
    """Who may call what; see :mod:`sloth_core.security.identity`."""

    async def require_admin(self, context: grpc.aio.ServicerContext) -> Any: ...
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


async def _abort_if_revoked(service: Any, context: grpc.aio.ServicerContext) -> None:
    """A call cancelled because its caller's certificate was revoked ends saying so."""
    exc = service._auth.ended_by_revocation()
    if exc is not None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await abort(context, exc)


class MasterService(sloth_pb2_grpc.MasterServicer):
    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        storage: Storage,
        bus: EventBus,
        auth: Authorizer,
        *,
        on_delete: Callable[[str], None] | None = None,
        clock: Callable[[], float],
        limits: bounds.Limits = bounds.DEFAULT_LIMITS,
        admission: Admission | None = None,
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._storage = storage
        self._bus = bus
        self._auth = auth
        self._on_delete = on_delete
        self._clock = clock
        self._limits = limits
        self._admission = admission or Admission()

    # ------------------------------------------------------------ agents' calls

    @unary
    async def Register(self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext) -> pb.RegisterResponse:
        validate_agent_name(request.name)
        await self._auth.require_agent(context, request.name)
        bounds.check_agent_metadata(
            address=request.address, hostname=request.hostname, os=request.os,
            version=request.version, labels=request.labels, limits=self._limits,
        )
        holder = self._registry.conflicting(request)
        # The holder may be a process that just stopped (restarted on another
        # port): only a holder that still answers keeps the name.
        take_over = holder is not None and not await self._dispatcher.agent_answers(holder.name, holder.address)
        self._registry.register(request, take_over=take_over)
        return pb.RegisterResponse(heartbeat_interval_s=self._registry.heartbeat_interval_s)

    @unary
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        await self._auth.require_agent(context, request.name)
        self._registry.heartbeat(request)
        return pb.HeartbeatResponse(heartbeat_interval_s=self._registry.heartbeat_interval_s)

    @unary
    async def Leave(self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext) -> pb.LeaveResponse:
        await self._auth.require_agent(context, request.name)
        self._registry.leave(request)
        return pb.LeaveResponse()

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
        rec = self._registry.require(request.name)
        if rec.status != pb.AGENT_ONLINE:
            state = pb.AgentStatus.Name(rec.status).removeprefix("AGENT_").lower()
            raise errors.AgentOfflineError(f"agent {rec.name!r} is {state}; only an online agent can be stopped")
        await self._shutdown_agent(rec.name, rec.address)
        self._registry.mark_stopped(rec.name)
        return self._registry.info(rec.name)

    async def _shutdown_agent(self, name: str, address: str) -> None:
        stub = self._dispatcher.agent_stub(name, address)
        try:
            await stub.Shutdown(pb.ShutdownRequest(), timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            raise errors.AgentOfflineError(
                f"could not reach agent {name!r} at {address}: {exc.details() or exc.code().name}"
            ) from None

    @unary
    async def DeleteAgent(self, request: pb.AgentRef, context: grpc.aio.ServicerContext) -> pb.DeleteAgentResponse:
        await self._auth.require_admin(context)
        rec = self._registry.require(request.name)
        if rec.status == pb.AGENT_ONLINE:
            # A live agent would just register again: stop it as well.
            try:
                await self._shutdown_agent(rec.name, rec.address)
            except errors.AgentOfflineError as exc:
                log.warning("deleting %s: %s", rec.name, exc)
        self._registry.delete(rec.name)
        self._dispatcher.forget_agent(rec.name)
        if self._on_delete is not None:
            self._on_delete(rec.name)
        return pb.DeleteAgentResponse()

    @streaming
    async def Run(self, request: pb.RunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        identity = await self._auth.require_admin(context)
        bounds.check_command(request.command, self._limits)
        job = self._dispatcher.start_job(request, _who(identity))
        try:
            yield pb.RunEvent(job_id=job.job_id, job=pb.JobStarted(runs=[run_info(r) for r in job.runs]))
            while job.pending:
                event = await job.queue.get()
                if event.WhichOneof("kind") is None:
                    continue  # the wake-up after the last run
                yield event
            while not job.queue.empty():
                event = job.queue.get_nowait()
                if event.WhichOneof("kind") is not None:
                    yield event
        finally:
            if job.pending:
                # The caller hung up (Ctrl-C, killed): nothing it started may keep running.
                job.detach()
                self._dispatcher.cancel_job(job)

    @unary
    async def CancelRun(self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext) -> pb.CancelRunResponse:
        await self._auth.require_admin(context)
        if not request.id:
            raise errors.UsageError("give a run id or a job id to cancel")
        cancelled = self._dispatcher.cancel(request.id)
        if not cancelled:
            rec = await self._storage.get_run(request.id)
            if rec is None and not await self._storage.list_runs(job_id=request.id, limit=1):
                raise errors.RunNotFoundError(f"no run or job with id {request.id!r}")
        return pb.CancelRunResponse(cancelled=cancelled)

    @unary
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        await self._auth.require_admin(context)
        limit = min(request.limit or DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT)
        records = await self._storage.list_runs(
            agent=request.agent, status=request.status, job_id=request.job_id, limit=limit
        )
        live = {r.run_id: r for r in self._dispatcher.active_runs()}
        infos = (bounds.listed_run(live.get(r.run_id) or run_info(r)) for r in records)
        return pb.ListRunsResponse(runs=bounds.page(infos, pb.RunInfo.ByteSize))

    @unary
    async def GetRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.RunInfo:
        await self._auth.require_admin(context)
        for info in self._dispatcher.active_runs():
            if info.run_id == request.run_id:
                return info
        rec = await self._storage.get_run(request.run_id)
        if rec is None:
            raise errors.RunNotFoundError(f"no run with id {request.run_id!r}")
        return run_info(rec)

    @streaming
    async def StreamRun(self, request: pb.StreamRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        await self._auth.require_admin(context)
        async for event in self._dispatcher.stream_run(request.run_id, request.follow):
            yield event

    @streaming
    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchBatch]:
        await self._auth.require_admin(context)
        # Subscribe and snapshot with no await in between: every later change
        # is in the queue, every earlier one in the snapshot.
        sub = self._bus.subscribe(request.include_output)
        queue = sub.queue
        try:
            snapshot = pb.Snapshot(
                agents=self._registry.all_info(),
                active_runs=[bounds.listed_run(r) for r in self._dispatcher.active_runs()],
                server_time=self._clock(),
            )
            yield pb.WatchBatch(events=[pb.WatchEvent(snapshot=snapshot)])
            loop = asyncio.get_running_loop()
            last_send = 0.0
            full = False
            while (event := await queue.get()) is not None:
                sub.taken(event)
                # At most one message per WATCH_MIN_INTERVAL_S: an event after
                # a quiet spell goes out at once; in a burst (a 1,000-agent
                # job) events gather into a few large messages, and 20
                # consoles cost the master 100 sends, not 80,000.
                wait = last_send + WATCH_MIN_INTERVAL_S - loop.time()
                if wait > 0 and not full:  # a full batch is efficient already: no need to gather
                    await asyncio.sleep(wait)
                batch = [event]
                # Bounded in bytes too: a batch a stalled reader never takes stays pinned.
                while not queue.empty() and len(batch) < WATCH_BATCH_MAX and sub.sending_bytes < BATCH_OUTPUT_BYTES:
                    event = queue.get_nowait()
                    if event is None:
                        break
                    sub.taken(event)
                    batch.append(event)
                full = sub.sending_bytes >= BATCH_OUTPUT_BYTES
                yield pb.WatchBatch(events=batch)
                self._bus.sent(sub)
                last_send = loop.time()
                if event is None:
                    break
            if sub.overflowed:
                raise errors.TooSlowError(sub.why)
        except asyncio.CancelledError:
            raise
        finally:
            self._bus.unsubscribe(sub)
