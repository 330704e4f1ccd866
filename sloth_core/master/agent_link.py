"""The master's calls to its agents: channels, stubs, and what a failed call means.

The dispatcher talks to agents only through an :class:`AgentLink`, so it can
be tested with a fake one (no gRPC). :class:`GrpcAgentLink` is the real one:
one channel per agent address, and every gRPC failure turned into a typed
error from :mod:`sloth_core.errors` here, in one place:

==================  ===============================================
the call ended      raised as
==================  ===============================================
``UNAVAILABLE``     :class:`~sloth_core.errors.AgentUnreachableError`
``CANCELLED``       :class:`~sloth_core.errors.CallCancelledError`
anything else       :class:`~sloth_core.errors.SlothError`
==================  ===============================================
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from sloth_core import errors, transport
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.security.names import agent_server_name
from sloth_core.storage import AgentRecord

if TYPE_CHECKING:
    import grpc.aio

    from sloth_core.proto import sloth_pb2_grpc

CANCEL_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 1.0


class ExecuteCall(Protocol):
    """A run in flight on an agent: its events, and a way to hang up."""

    def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]: ...
    def cancel(self) -> bool: ...
    def done(self) -> bool: ...


class AgentLink(Protocol):
    """What the master asks of an agent."""

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> ExecuteCall: ...
    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None: ...
    async def shutdown(self, agent: AgentRecord) -> None: ...
    async def answers(self, agent: AgentRecord) -> bool: ...
    def forget(self, name: str) -> None: ...
    async def close(self) -> None: ...


class _GrpcExecuteCall:
    def __init__(self, call: grpc.aio.UnaryStreamCall, agent: AgentRecord) -> None:  # type: ignore[type-arg]
        self._call = call
        self._agent = agent

    async def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]:
        import grpc.aio

        try:
            async for event in self._call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise _run_error(exc, self._agent) from None

    def cancel(self) -> bool:
        return self._call.cancel()

    def done(self) -> bool:
        return self._call.done()


def _run_error(exc: grpc.aio.AioRpcError, agent: AgentRecord) -> errors.SlothError:
    code = exc.code().name
    if code == "UNAVAILABLE":
        return errors.AgentUnreachableError(
            f"could not reach agent {agent.name!r} at {agent.address}: {exc.details()}"
        )
    if code == "CANCELLED":
        return errors.CallCancelledError("cancelled")
    return errors.SlothError(f"agent {agent.name!r} failed the run: {code}: {exc.details()}")


class GrpcAgentLink:
    """The real :class:`AgentLink`: mutual TLS (or ``--insecure``) gRPC channels."""

    def __init__(self, tls: transport.TLSConfig | None) -> None:
        self._tls = tls
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _stub(self, agent: AgentRecord) -> sloth_pb2_grpc.AgentStub:
        from sloth_core.proto import sloth_pb2_grpc

        key = (agent.name, agent.address)
        channel = self._channels.get(key)
        if channel is None:
            self.forget(agent.name)  # it moved: the old address is dead
            channel = self._open(agent)
            self._channels[key] = channel
        return sloth_pb2_grpc.AgentStub(channel)

    def _open(self, agent: AgentRecord) -> grpc.aio.Channel:
        # With TLS, the server name makes the handshake prove it is that agent.
        return transport.open_channel(agent.address, self._tls, server_name=agent_server_name(agent.name))

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> ExecuteCall:
        return _GrpcExecuteCall(self._stub(agent).Execute(request), agent)

    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None:
        import grpc.aio

        try:
            await self._stub(agent).Cancel(pb.CancelRequest(run_id=run_id), timeout=CANCEL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise _run_error(exc, agent) from None

    async def shutdown(self, agent: AgentRecord) -> None:
        import grpc.aio

        try:
            await self._stub(agent).Shutdown(pb.ShutdownRequest(), timeout=SHUTDOWN_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise errors.AgentUnreachableError(
                f"could not reach agent {agent.name!r} at {agent.address}: {exc.details() or exc.code().name}"
            ) from None

    async def answers(self, agent: AgentRecord) -> bool:
        channel = self._open(agent)
        try:
            await asyncio.wait_for(channel.channel_ready(), PROBE_TIMEOUT_S)
        except TimeoutError:
            return False
        finally:
            await channel.close(grace=None)
        return True

    def forget(self, name: str) -> None:
        for key in [k for k in self._channels if k[0] == name]:
            self._spawn(self._channels.pop(key).close())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
