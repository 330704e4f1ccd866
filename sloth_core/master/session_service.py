"""The AgentSession gRPC service: thin translation for agents' sessions.

``Connect``: the caller must be the agent its hello names; the hello is
admitted by the registry, the session opened in the
:class:`~sloth_core.master.sessions.SessionHub`; then beats go to the
registry and the hub's messages for the agent go down the stream. When the
stream ends the agent is offline at once (or stopped, after a goodbye).

``Report``: the caller must be the agent the run was asked of; its events
go to the run's relay through the hub.

``Input``: the same caller check; then the run's input from its caller
(:mod:`sloth_core.master.input_relay`), as fast as the agent takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
import grpc.aio

from sloth_core import bounds, errors
from sloth_core.master.input_relay import InputRelay
from sloth_core.master.registry import Registry
from sloth_core.master.service import Authorizer
from sloth_core.master.sessions import Session, SessionHub, SessionRun
from sloth_core.names import validate_agent_name
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.rpc_errors import abort

log = logging.getLogger(__name__)


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """``ipv4:1.2.3.4:5678`` → ``1.2.3.4:5678`` (where a session comes from)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    return rest if kind in ("ipv4", "ipv6") else peer


class AgentSessionService(sloth_pb2_grpc.AgentSessionServicer):
    def __init__(
        self,
        registry: Registry,
        hub: SessionHub,
        auth: Authorizer,
        *,
        limits: bounds.Limits = bounds.DEFAULT_LIMITS,
        inputs: InputRelay | None = None,
    ) -> None:
        self._registry = registry
        self._hub = hub
        self._inputs = inputs if inputs is not None else InputRelay()
        self._auth = auth
        self._limits = limits

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        first = await context.read()
        if first is grpc.aio.EOF or not first.HasField("hello"):
            await abort(context, errors.UsageError("a session starts with the agent's hello"))
        hello = first.hello
        try:
            validate_agent_name(hello.name)
        except errors.SlothError as exc:
            await abort(context, exc)
        await self._auth.require_agent(context, hello.name)
        if not hello.address:
            hello.address = peer_address(context)
        try:
            bounds.check_agent_metadata(
                address=hello.address, hostname=hello.hostname, os=hello.os,
                version=hello.version, labels=hello.labels, limits=self._limits,
            )
            bounds.check_facts(hello.facts, self._limits)
            await self._registry.admit(hello, self._answers)
        except errors.SlothError as exc:
            await abort(context, exc)
        session = self._hub.open(hello.name, hello.instance_id, asyncio.current_task())  # type: ignore[arg-type]
        pace = self._registry.pace_for(hello.name)
        session.pace_s = pace
        await context.write(pb.MasterDown(welcome=pb.RegisterResponse(
            heartbeat_interval_s=pace,
        )))
        writer = asyncio.create_task(self._write(session, context), name=f"session {hello.name}")
        reader = asyncio.create_task(self._read(session, context), name=f"beats {hello.name}")
        why = "the agent closed its session"
        try:
            done, _ = await asyncio.wait([writer, reader], return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                why = "the master ended the session"
        except asyncio.CancelledError:
            why = "the master ended the session"
            raise
        finally:
            writer.cancel()
            reader.cancel()
            self._hub.ended(session, why)
            self._registry.disconnected(hello.name, hello.instance_id)

    def _facts(self, beat: pb.Beat) -> pb.Facts | None:
        """The beat's facts, or None when it has none or they break the bounds (the beat still counts)."""
        if not beat.HasField("facts"):
            return None
        try:
            bounds.check_facts(beat.facts, self._limits)
        except errors.InvalidArgumentError:
            return None
        return beat.facts

    async def _answers(self, holder: Any) -> bool:
        return self._hub.connected(holder.name, holder.instance_id)

    async def _write(self, session: Session, context: grpc.aio.ServicerContext) -> None:
        while (message := await session.outbox.get()) is not None:
            async with self._hub.writing:
                await context.write(message)

    async def _read(self, session: Session, context: grpc.aio.ServicerContext) -> None:
        name, instance = session.name, session.instance_id
        with contextlib.suppress(grpc.aio.AioRpcError):
            while (message := await context.read()) is not grpc.aio.EOF:
                kind = message.WhichOneof("kind")
                if kind == "beat":
                    try:
                        self._registry.heartbeat(pb.HeartbeatRequest(
                            name=name, instance_id=instance, running=message.beat.running,
                            facts=self._facts(message.beat)))
                    except errors.AgentNotFoundError:
                        return  # deleted meanwhile: end the session, the agent says hello again
                    pace = self._registry.pace_for(name)
                    if not session.pace_s / 2 <= pace <= session.pace_s * 2:
                        session.pace_s = pace
                        session.send(pb.MasterDown(pace=pb.Pace(heartbeat_interval_s=pace)))
                elif kind == "started":
                    self._hub.started(session, message.started)
                elif kind == "done":
                    self._registry.touch(name)
                    self._hub.done(session, message.done)
                elif kind == "goodbye":
                    self._registry.leave(pb.LeaveRequest(name=name, instance_id=instance))

    async def Report(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> pb.ReportAck:
        first = await context.read()
        if first is grpc.aio.EOF:
            return pb.ReportAck()
        name = await self._agent_of_run(first.run_id, context)
        try:
            run = self._hub.attach(name, first.run_id)
        except errors.SlothError as exc:
            await abort(context, exc)
        # Read in a task of our own: the master hangs up (run.reporter) while
        # a read may be pending, and the agent must see the call end.
        assert run.reporter is not None
        reader = asyncio.create_task(self._pump(first, run, name, context))
        lost = errors.AgentUnreachableError(f"lost contact with agent {name!r} mid-run")
        try:
            await asyncio.wait([reader, run.reporter], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run.fail(lost)  # the agent's call broke (a no-op if the master hung up)
            raise
        finally:
            if not reader.done():
                reader.cancel()
        if not reader.done() or reader.cancelled() or reader.exception() is not None:
            if not run.hung_up:
                run.fail(lost)
            await abort(context, errors.CallCancelledError("the master hung up this run"))
        run.reported_all()
        return pb.ReportAck()

    async def Input(self, request: pb.InputRequest, context: grpc.aio.ServicerContext) -> Any:
        await self._agent_of_run(request.run_id, context)
        try:
            async with contextlib.aclosing(self._inputs.read(request.run_id)) as items:  # type: ignore[type-var]
                async for item in items:
                    yield item
        except errors.SlothError as exc:
            await abort(context, exc)

    async def _agent_of_run(self, run_id: str, context: grpc.aio.ServicerContext) -> str:
        """The agent run ``run_id`` was asked of, which the caller must be (only it reports it, reads its input)."""
        try:
            name = self._hub.agent_of(run_id)
        except errors.SlothError as exc:
            await abort(context, exc)
        await self._auth.require_agent(context, name)
        return name

    async def _pump(self, first: pb.RunReport, run: SessionRun, name: str, context: grpc.aio.ServicerContext) -> None:
        message: Any = first
        while message is not grpc.aio.EOF:
            self._registry.touch(name)
            await run.deliver(message.event)
            message = await context.read()
