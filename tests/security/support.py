"""Helpers for the security tests: a real master (main + join ports) and agents.

Servers are real ``grpc.aio`` servers on 127.0.0.1 ephemeral ports; the
servicers are tiny stand-ins whose only logic is the authorization call the
real master and agent make first in each RPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc.aio

from sloth_core import transport
from sloth_core.proto import sloth_pb2, sloth_pb2_grpc
from sloth_core.security import ca
from sloth_core.security.identity import Authorizer
from sloth_core.security.join import JoinServicer
from sloth_core.security.names import MASTER_SERVER_NAME
from sloth_core.security.pki import MasterPKI
from sloth_core.transport import TLSConfig

RPC_TIMEOUT_S = 5.0
Context = grpc.aio.ServicerContext


class FakeMaster(sloth_pb2_grpc.MasterServicer):
    """ListAgents is an operator RPC (agents say hello on FakeSession)."""

    def __init__(self, authz: Authorizer) -> None:
        self.authz = authz

    async def ListAgents(self, request: sloth_pb2.ListAgentsRequest, context: Context) -> sloth_pb2.ListAgentsResponse:
        await self.authz.require_admin(context)
        return sloth_pb2.ListAgentsResponse()



class FakeSession(sloth_pb2_grpc.AgentSessionServicer):
    """An agent's session: its hello must come from that agent."""

    def __init__(self, authz: Authorizer) -> None:
        self.authz = authz

    async def Connect(self, request_iterator: object, context: Context) -> None:
        first = await context.read()
        await self.authz.require_agent(context, first.hello.name)
        await context.write(sloth_pb2.MasterDown(welcome=sloth_pb2.RegisterResponse(heartbeat_interval_s=1.0)))


class FakeAgent(sloth_pb2_grpc.AgentServicer):
    """Cancel is master-only, like every Agent RPC."""

    def __init__(self) -> None:
        self.authz = Authorizer()  # an agent has no PKI, only its TLS config

    async def Cancel(self, request: sloth_pb2.CancelRequest, context: Context) -> sloth_pb2.CancelResponse:
        await self.authz.require_master(context)
        return sloth_pb2.CancelResponse(found=True)


class CountingJoinServicer(JoinServicer):
    """Counts requests that reached the join endpoint (to prove none did)."""

    calls = 0

    async def Join(self, request: sloth_pb2.JoinRequest, context: Context) -> sloth_pb2.JoinResponse:
        self.calls += 1
        return await super().Join(request, context)


@dataclass
class RunningMaster:
    data_dir: Path
    pki: MasterPKI
    port: int
    join_port: int
    join_servicer: CountingJoinServicer
    online: set[str] = field(default_factory=set)
    servers: list[grpc.aio.Server] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop(None)


async def start_master(data_dir: Path) -> RunningMaster:
    """What the real master does at start, minus its registry."""
    pki = MasterPKI.load_or_create(data_dir)
    main = transport.create_server()
    sloth_pb2_grpc.add_MasterServicer_to_server(FakeMaster(Authorizer(pki)), main)
    sloth_pb2_grpc.add_AgentSessionServicer_to_server(FakeSession(Authorizer(pki)), main)
    port = transport.bind(main, "127.0.0.1:0", pki.master_tls)
    # Joining gets a server of its own: a server serves all its services on
    # all its ports, and this port takes clients without certificates.
    online: set[str] = set()
    join_servicer = CountingJoinServicer(pki, name_in_use=online.__contains__)
    join = transport.create_server()
    sloth_pb2_grpc.add_JoinServicer_to_server(join_servicer, join)
    join_port = transport.bind_server_tls_only(join, "127.0.0.1:0", pki.join_key_pem, pki.join_cert_pem)
    await main.start()
    await join.start()
    pki.set_join_port(join_port)
    return RunningMaster(data_dir, pki, port, join_port, join_servicer, online, [main, join])


def issue_agent_tls(pki: MasterPKI, name: str) -> TLSConfig:
    """An agent identity without the join round trip (for authorization tests)."""
    key = ca.generate_key()
    cert_pem = pki.issue_agent_certificate(name, ca.build_csr(key, name))
    return TLSConfig(pki.ca_pem, cert_pem, ca.key_to_pem(key))


def _master_channel(target: str, tls: TLSConfig | None) -> grpc.aio.Channel:
    return transport.open_channel(target, tls, server_name=MASTER_SERVER_NAME if tls else None)


async def heartbeat(target: str, tls: TLSConfig | None, name: str) -> None:
    """Say hello on an agent session as ``name`` (beats then follow on the same stream)."""
    async with _master_channel(target, tls) as channel:
        call = sloth_pb2_grpc.AgentSessionStub(channel).Connect(timeout=RPC_TIMEOUT_S)
        await call.write(sloth_pb2.AgentUp(hello=sloth_pb2.RegisterRequest(name=name)))
        reply = await call.read()
        if reply is grpc.aio.EOF:
            await call  # raises the status it ended with
        call.cancel()


async def list_agents(target: str, tls: TLSConfig | None) -> None:
    async with _master_channel(target, tls) as channel:
        await sloth_pb2_grpc.MasterStub(channel).ListAgents(sloth_pb2.ListAgentsRequest(), timeout=RPC_TIMEOUT_S)


async def cancel(target: str, tls: TLSConfig, server_name: str) -> None:
    async with transport.open_channel(target, tls, server_name=server_name) as channel:
        await sloth_pb2_grpc.AgentStub(channel).Cancel(sloth_pb2.CancelRequest(run_id="r1"), timeout=RPC_TIMEOUT_S)
