"""Every port is mTLS and every RPC checks who is calling.

A real master endpoint (ListAgents: admin only; an agent session's hello: that agent only)
and real agent endpoints (Cancel: master only), over real TLS on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest

from sloth_core import transport
from sloth_core.proto import sloth_pb2, sloth_pb2_grpc
from sloth_core.security.identity import Authorizer, Identity, peer_identity
from sloth_core.security.names import agent_server_name
from sloth_core.security.pki import MasterPKI
from sloth_core.transport import TLSConfig

from .support import RunningMaster, cancel, heartbeat, issue_agent_tls, list_agents

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

StartAgent = Callable[[TLSConfig], Awaitable[int]]


async def _refused(call: Awaitable[None], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


async def test_admin_may_list_and_agent_may_heartbeat_as_itself(master: RunningMaster) -> None:
    await list_agents(master.target, master.pki.admin_tls)
    await heartbeat(master.target, issue_agent_tls(master.pki, "web1"), "web1")


async def test_plaintext_client_is_refused_by_a_tls_server(master: RunningMaster) -> None:
    await _refused(list_agents(master.target, None), grpc.StatusCode.UNAVAILABLE)


async def test_certificate_from_another_ca_is_refused(master: RunningMaster, tmp_path: Path) -> None:
    stranger = MasterPKI.load_or_create(tmp_path / "stranger")
    # Trusts our master, but presents a certificate our CA never signed.
    tls = TLSConfig(master.pki.ca_pem, stranger.admin_tls.cert_pem, stranger.admin_tls.key_pem)
    await _refused(list_agents(master.target, tls), grpc.StatusCode.UNAVAILABLE)


async def test_agent_cannot_call_operator_rpcs(master: RunningMaster) -> None:
    details = await _refused(
        list_agents(master.target, issue_agent_tls(master.pki, "web1")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert details == "only an admin may do this; the caller is agent:web1"


async def test_agent_cannot_heartbeat_as_another_agent(master: RunningMaster) -> None:
    tls = issue_agent_tls(master.pki, "web1")
    details = await _refused(heartbeat(master.target, tls, "web2"), grpc.StatusCode.PERMISSION_DENIED)
    assert details == "the caller's certificate is for agent 'web1', not 'web2'"
    details = await _refused(
        heartbeat(master.target, master.pki.admin_tls, "web2"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "the caller is admin:local" in details


async def test_revoked_agent_certificate_is_refused(master: RunningMaster) -> None:
    tls = issue_agent_tls(master.pki, "web1")
    await heartbeat(master.target, tls, "web1")
    master.pki.revoke_agent("web1")
    details = await _refused(heartbeat(master.target, tls, "web1"), grpc.StatusCode.PERMISSION_DENIED)
    assert details == "the certificate of agent:web1 was revoked; re-join with a new token"


async def test_only_the_master_may_call_an_agent(master: RunningMaster, agent_server: StartAgent) -> None:
    web1, web2 = issue_agent_tls(master.pki, "web1"), issue_agent_tls(master.pki, "web2")
    port = await agent_server(web1)
    target = f"127.0.0.1:{port}"
    await cancel(target, master.pki.master_tls, agent_server_name("web1"))
    details = await _refused(cancel(target, web2, agent_server_name("web1")), grpc.StatusCode.PERMISSION_DENIED)
    assert details == "only the master may do this; the caller is agent:web2"
    details = await _refused(
        cancel(target, master.pki.admin_tls, agent_server_name("web1")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert details == "only the master may do this; the caller is admin:local"


async def test_master_checks_which_agent_it_reached(master: RunningMaster, agent_server: StartAgent) -> None:
    """Dialing web2's address but finding web1's certificate fails the handshake."""
    port = await agent_server(issue_agent_tls(master.pki, "web1"))
    await _refused(
        cancel(f"127.0.0.1:{port}", master.pki.master_tls, agent_server_name("web2")),
        grpc.StatusCode.UNAVAILABLE,
    )


async def test_agent_certificate_cannot_serve_as_the_master(master: RunningMaster, agent_server: StartAgent) -> None:
    # An agent endpoint posing as the master: our admin must not talk to it.
    port = await agent_server(issue_agent_tls(master.pki, "master"))
    await _refused(list_agents(f"127.0.0.1:{port}", master.pki.admin_tls), grpc.StatusCode.UNAVAILABLE)


class _Probe(sloth_pb2_grpc.MasterServicer):
    """Reports the caller's identity, as the Authorizer and as peer_identity see it."""

    def __init__(self) -> None:
        self.seen: list[Identity] = []

    async def ListAgents(
        self, request: sloth_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> sloth_pb2.ListAgentsResponse:
        self.seen.append(await Authorizer().require_admin(context))
        self.seen.append(peer_identity(context))  # the second read comes from the cache
        return sloth_pb2.ListAgentsResponse()


async def test_plaintext_server_sees_insecure_and_tls_peer_is_identified(
    master: RunningMaster,
) -> None:
    probe = _Probe()
    server = transport.create_server()
    sloth_pb2_grpc.add_MasterServicer_to_server(probe, server)
    plain = transport.bind(server, "127.0.0.1:0", None)  # as with --insecure
    secure = transport.bind(server, "127.0.0.1:0", master.pki.master_tls)
    await server.start()
    try:
        await list_agents(f"127.0.0.1:{plain}", None)
        await list_agents(f"127.0.0.1:{secure}", master.pki.admin_tls)
    finally:
        await server.stop(None)
    assert probe.seen == [Identity("insecure", "")] * 2 + [Identity("admin", "local")] * 2


async def test_tls_port_without_client_certificates_identifies_nobody(
    master: RunningMaster,
) -> None:
    """If the Master service were ever served on the join port, it would refuse."""
    server = transport.create_server()
    sloth_pb2_grpc.add_MasterServicer_to_server(_Probe(), server)
    port = transport.bind_server_tls_only(server, "127.0.0.1:0", master.pki.join_key_pem, master.pki.join_cert_pem)
    await server.start()
    try:
        async with transport.open_channel(
            f"127.0.0.1:{port}", None, server_name="join.sloth", root_pem=master.pki.join_cert_pem
        ) as channel:
            details = await _refused(
                sloth_pb2_grpc.MasterStub(channel).ListAgents(sloth_pb2.ListAgentsRequest(), timeout=5),
                grpc.StatusCode.PERMISSION_DENIED,
            )
    finally:
        await server.stop(None)
    assert details == "the caller presented no client certificate"
