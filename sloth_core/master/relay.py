"""Runs on agents connected to another master: the master-to-master relay.

An agent keeps one session, with one master. A run that master A starts on
an agent whose session is with master B goes A → B → agent: A's link
(:class:`ClusterLink`) sends the run request to B over mutual TLS with A's
master identity, B puts it down the agent's session, and the agent's events
come back the same way. A hangs up → B hangs up → the agent kills the run,
as it does for a run of its own master. Cancel and shutdown travel alike.

A does not know which master holds an agent: it asks the live masters of
the cluster in turn (a handful), and one without a session for the agent
says so at once. The calls are ``/sloth.v1.Cluster/{Execute,Cancel,Shutdown,Input}``
on the master port: protobuf messages as bytes and the agent's name in the
metadata, beside the Master service without changing its protocol.

A run that takes input (stdin, a terminal) also names, in the metadata of
its Execute call, where its input is: A's address. When the agent opens
the run's ``Input`` call on B, B reads it from A's ``Input`` relay call
(:class:`RemoteInput`), so input flows caller → A → B → agent with each
hop's flow control, as output flows back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.rpc_errors import abort, reason_of
from sloth_core.storage import AgentRecord

if TYPE_CHECKING:
    from sloth_core.master.input_relay import InputRelay
    from sloth_core.master.lease import MasterLease
    from sloth_core.master.registry import Registry
    from sloth_core.master.sessions import SessionHub
    from sloth_core.transport import TLSConfig

log = logging.getLogger(__name__)

SERVICE = "sloth.v1.Cluster"
AGENT_KEY = "sloth-agent"
INPUT_FROM_KEY = "sloth-input-from"  # the relaying master's address, for a run that takes input
CALL_TIMEOUT_S = 10.0
PEERS_TTL_S = 1.0


# ---------------------------------------------------------------- the master holding the session


def relay_handler(
    hub: SessionHub, registry: Registry, auth: Any, inputs: InputRelay, link: ClusterLink
) -> grpc.GenericRpcHandler:
    """The relay calls, for the master port (callers must be masters of the cluster)."""

    async def session_of(context: grpc.aio.ServicerContext) -> AgentRecord:
        await auth.require_master(context)
        name = dict(context.invocation_metadata() or ()).get(AGENT_KEY, "")
        rec = registry.get(name)
        if rec is None or not hub.connected(name):
            await abort(context, errors.AgentUnreachableError(f"agent {name!r} has no session with this master"))
        assert rec is not None
        return rec

    async def execute(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        rec = await session_of(context)
        execute = pb.ExecuteRequest.FromString(request)
        source = dict(context.invocation_metadata() or ()).get(INPUT_FROM_KEY, "")
        if (execute.stdin or execute.HasField("pty")) and source:
            # Registered before the agent hears of the run: its Input call finds it.
            inputs.add(execute.run_id, RemoteInput(lambda: link.channel(source), execute.run_id))
        run = hub.execute(rec, execute)
        try:
            async for event in run:
                yield event.SerializeToString()
        except errors.SlothError as exc:
            await abort(context, exc)
        finally:
            inputs.remove(execute.run_id)
            if not run.done():
                run.cancel()  # the relaying master hung up: so do we, and the agent kills the run

    async def input_of(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        await auth.require_master(context)
        try:
            async with contextlib.aclosing(inputs.read(pb.InputRequest.FromString(request).run_id)) as items:  # type: ignore[type-var]
                async for item in items:
                    yield item.SerializeToString()
        except errors.SlothError as exc:
            await abort(context, exc)

    async def cancel(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        rec = await session_of(context)
        await hub.cancel_run(rec, pb.CancelRequest.FromString(request).run_id)
        return b""

    async def shutdown(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        rec = await session_of(context)
        await hub.shutdown(rec)
        # Stopped at once, here too, as when this master stops it itself: its
        # goodbye may not make it, and its session's end must not read "offline".
        registry.mark_stopped(rec.name)
        return b""

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Execute": grpc.unary_stream_rpc_method_handler(execute),
        "Cancel": grpc.unary_unary_rpc_method_handler(cancel),
        "Shutdown": grpc.unary_unary_rpc_method_handler(shutdown),
        "Input": grpc.unary_stream_rpc_method_handler(input_of),
    })


class RemoteInput:
    """A run's input kept by the master that relays the run here (an :class:`~.input_relay.InputFeed`)."""

    def __init__(self, channel: Callable[[], grpc.aio.Channel], run_id: str) -> None:
        self._channel = channel
        self._run_id = run_id

    async def put(self, item: pb.RunInput) -> None:  # the caller is on the other master
        raise AssertionError("input for a relayed run is put on the master that relays it")

    def close(self) -> None:
        pass

    async def ready(self) -> None:
        return

    async def read(self) -> AsyncIterator[pb.RunInput]:
        call = self._channel().unary_stream(f"/{SERVICE}/Input")(pb.InputRequest(run_id=self._run_id).SerializeToString())
        try:
            async for raw in call:
                yield pb.RunInput.FromString(raw)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.info("run %s: its input from the relaying master broke off: %s", self._run_id, exc.details())
        finally:
            call.cancel()


# ---------------------------------------------------------------- the master that starts the run


class ClusterLink:
    """The dispatcher's link: this master's sessions first, then the other masters'."""

    def __init__(self, hub: SessionHub, tls: TLSConfig | None) -> None:
        self._hub = hub
        #: Set once the master has bound its port and taken its lease (who the others are).
        self.lease: MasterLease | None = None
        self._tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._peers: list[str] = []
        self._peers_at = -PEERS_TTL_S
        self._holders: dict[str, str] = {}  # agent -> the master that last relayed for it

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> Any:
        if self._hub.connected(agent.name):
            return self._hub.execute(agent, request)
        return RelayedRun(self, agent.name, request)

    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None:
        if self._hub.connected(agent.name):
            return await self._hub.cancel_run(agent, run_id)
        await self._unary("Cancel", agent.name, pb.CancelRequest(run_id=run_id).SerializeToString())

    async def shutdown(self, agent: AgentRecord) -> None:
        if self._hub.connected(agent.name):
            return await self._hub.shutdown(agent)
        await self._unary("Shutdown", agent.name, b"")

    async def answers(self, agent: AgentRecord) -> bool:
        return await self._hub.answers(agent)

    def forget(self, name: str) -> None:
        self._hub.forget(name)

    async def close(self) -> None:
        await self._hub.close()
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()

    # ------------------------------------------------------------ reaching the others

    async def peers(self, agent: str = "") -> list[str]:
        """The addresses of the other live masters; the one that last held ``agent`` first.

        The list is read from the store at most every PEERS_TTL_S: a job on
        1,000 agents must not ask the database 1,000 times who the others are.
        """
        if self.lease is None:
            return []
        now = time.monotonic()
        if now - self._peers_at > PEERS_TTL_S:
            masters = await self.lease.masters()
            self._peers = [m.address for m in masters if m.alive and m.id != self.lease.master_id]
            self._peers_at = now
        holder = self._holders.get(agent)
        if holder in self._peers:
            return [holder, *(p for p in self._peers if p != holder)]
        return list(self._peers)

    def held_by(self, agent: str, address: str) -> None:
        self._holders[agent] = address

    def channel(self, address: str) -> grpc.aio.Channel:
        from sloth_core import transport
        from sloth_core.security.names import MASTER_SERVER_NAME

        channel = self._channels.get(address)
        if channel is None:
            channel = transport.open_channel(address, self._tls, server_name=MASTER_SERVER_NAME)
            self._channels[address] = channel
        return channel

    async def _unary(self, method: str, agent: str, request: bytes) -> None:
        for address in await self.peers(agent):
            call = self.channel(address).unary_unary(f"/{SERVICE}/{method}")
            try:
                await call(request, metadata=((AGENT_KEY, agent),), timeout=CALL_TIMEOUT_S)
                self.held_by(agent, address)
                return
            except grpc.aio.AioRpcError as exc:
                if not _not_here(exc):
                    raise _relay_error(exc, address, agent) from None
        raise errors.AgentUnreachableError(f"agent {agent!r} has no session with any master of the cluster")


class RelayedRun:
    """A run on an agent held by another master (an ExecuteCall, as the dispatcher expects)."""

    def __init__(self, link: ClusterLink, agent: str, request: pb.ExecuteRequest) -> None:
        self._link = link
        self._agent = agent
        self._request = request
        self._call: Any = None
        self._done = False
        self._cancelled = False
        # Where the agent's master reads the run's input from: us.
        takes_input = request.stdin or request.HasField("pty")
        self._metadata: tuple[tuple[str, str], ...] = ((AGENT_KEY, agent),)
        if takes_input and link.lease is not None:
            self._metadata += ((INPUT_FROM_KEY, link.lease.address),)

    async def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]:
        try:
            for address in await self._link.peers(self._agent):
                if self._cancelled:
                    raise errors.CallCancelledError("cancelled")
                self._call = self._link.channel(address).unary_stream(f"/{SERVICE}/Execute")(
                    self._request.SerializeToString(), metadata=self._metadata
                )
                got_any = False
                try:
                    async for raw in self._call:
                        if not got_any:
                            self._link.held_by(self._agent, address)
                        got_any = True
                        event = pb.ExecuteEvent.FromString(raw)
                        yield event
                        if event.HasField("exit"):
                            return
                    return
                except grpc.aio.AioRpcError as exc:
                    if self._cancelled or exc.code() == grpc.StatusCode.CANCELLED:
                        raise errors.CallCancelledError("cancelled") from None
                    if not got_any and _not_here(exc):
                        continue  # that master does not hold the agent: ask the next
                    raise _relay_error(exc, address, self._agent) from None
            raise errors.AgentUnreachableError(f"agent {self._agent!r} has no session with any master of the cluster")
        finally:
            self._done = True

    def cancel(self) -> bool:
        if self._done:
            return False
        self._cancelled = True
        if self._call is not None:
            with contextlib.suppress(Exception):
                self._call.cancel()
        return True

    def done(self) -> bool:
        return self._done


def _not_here(exc: grpc.aio.AioRpcError) -> bool:
    """The other master answered that it holds no session for the agent (or is not reachable)."""
    return reason_of(exc) == errors.AgentUnreachableError.reason or exc.code() == grpc.StatusCode.UNAVAILABLE


def _relay_error(exc: grpc.aio.AioRpcError, address: str, agent: str) -> errors.SlothError:
    from sloth_core.rpc_errors import error_from_rpc

    error = error_from_rpc(exc, address, what="the master holding the agent")
    if isinstance(error, errors.MasterUnreachableError):
        return errors.AgentUnreachableError(f"lost contact with agent {agent!r} through the master at {address}")
    return error
