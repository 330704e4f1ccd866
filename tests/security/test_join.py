"""Joining over the wire: the happy path, restarts, and each refusal."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import grpc
import grpc.aio
import pytest

from sloth_core.errors import CredentialsError, MasterUnreachableError, NameTakenError
from sloth_core.security import ca
from sloth_core.security.credentials import load_admin_bundle
from sloth_core.security.join import find_local_token, join_master, load_agent_tls
from sloth_core.security.tokens import JoinToken

from .support import RunningMaster, heartbeat, list_agents, start_master

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]


async def test_join_then_restart_reuses_stored_certificates(master: RunningMaster, tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    token = find_local_token(master.data_dir)  # same user, same machine: no flags
    assert token is not None
    tls = await join_master("127.0.0.1:50053", token, "web1", agent_dir)
    await heartbeat(master.target, tls, "web1")

    key_file = agent_dir / "pki" / "agent-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700

    # Both sides restart; the agent has no token this time.
    await master.stop()
    restarted = await start_master(master.data_dir)
    try:
        reloaded = load_agent_tls(agent_dir, "web1")
        assert reloaded == tls
        await heartbeat(restarted.target, reloaded, "web1")
    finally:
        await restarted.stop()
    with pytest.raises(CredentialsError, match="not for agent 'web2'"):
        load_agent_tls(agent_dir, "web2")
    assert load_agent_tls(tmp_path / "never-joined") is None


async def test_rejoin_replaces_the_old_certificate(master: RunningMaster, tmp_path: Path) -> None:
    token = master.pki.token_string()
    old = await join_master("127.0.0.1", token, "web1", tmp_path / "a")
    # The name is bound to that certificate: taking it over needs a token made for it.
    with pytest.raises(NameTakenError, match="belongs to an existing agent's certificate"):
        await join_master("127.0.0.1", token, "web1", tmp_path / "b")
    replacing = master.pki.create_token(for_name="web1", replace=True)
    new = await join_master("127.0.0.1", replacing, "web1", tmp_path / "b")
    await heartbeat(master.target, new, "web1")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await heartbeat(master.target, old, "web1")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def _join_error(master: RunningMaster, token: str, tmp_path: Path) -> str:
    with pytest.raises(CredentialsError) as info:
        await join_master("127.0.0.1", token, "web1", tmp_path / "agent")
    assert not (tmp_path / "agent" / "pki" / "agent.pem").exists()
    return str(info.value)


async def test_wrong_secret(master: RunningMaster, tmp_path: Path) -> None:
    real = JoinToken.parse(master.pki.token_string())
    forged = JoinToken(real.join_port, real.token_id, b"\0" * 32, real.pin)
    assert await _join_error(master, str(forged), tmp_path) == ("join token is invalid or was rotated")


async def test_rotated_token(master: RunningMaster, tmp_path: Path) -> None:
    old = master.pki.token_string()
    master.pki.tokens.rotate()
    assert await _join_error(master, old, tmp_path) == "join token is invalid or was rotated"
    await join_master("127.0.0.1", master.pki.token_string(), "web1", tmp_path / "new")


async def test_used_single_use_token(master: RunningMaster, tmp_path: Path) -> None:
    once = master.pki.create_token(once=True)
    await join_master("127.0.0.1", once, "web1", tmp_path / "first")
    assert await _join_error(master, once, tmp_path) == "join token was already used"


async def test_expired_token(master: RunningMaster, tmp_path: Path) -> None:
    token = master.pki.create_token(ttl_s=0.01)
    await asyncio.sleep(0.02)
    assert await _join_error(master, token, tmp_path) == "join token expired"


async def test_token_of_another_master_fails_the_pin_before_sending(
    master: RunningMaster, other_master: RunningMaster, tmp_path: Path
) -> None:
    # Another master's token, pointing at this master's join port (as if both
    # listened on the same port on different hosts).
    theirs = JoinToken.parse(other_master.pki.token_string())
    token = JoinToken(master.join_port, theirs.token_id, theirs.secret, theirs.pin)
    message = await _join_error(master, str(token), tmp_path)
    assert message == (
        f"the master at 127.0.0.1:{master.join_port} is not the one this token is for (certificate pin mismatch)"
    )
    assert master.join_servicer.calls == 0  # nothing was sent


async def test_name_held_by_an_online_agent(master: RunningMaster, tmp_path: Path) -> None:
    once = master.pki.create_token(once=True)
    master.online.add("web1")
    with pytest.raises(NameTakenError, match="held by another online agent"):
        await join_master("127.0.0.1", once, "web1", tmp_path / "agent")
    master.online.clear()
    await join_master("127.0.0.1", once, "web1", tmp_path / "agent")  # not consumed before


async def test_malformed_token_and_unreachable_join_port(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="malformed"):
        await join_master("127.0.0.1", "not-a-token", "web1", tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    token = JoinToken(free_port, "AAAAAAAAAAA", b"s" * 32, ca.pin_of_der(b"x"))
    with pytest.raises(MasterUnreachableError, match=f"join port at 127.0.0.1:{free_port}"):
        await join_master("127.0.0.1", str(token), "web1", tmp_path)


async def test_exported_admin_bundle_works_from_another_dir(master: RunningMaster, tmp_path: Path) -> None:
    remote = tmp_path / "remote-operator"
    remote.mkdir()
    master.pki.export_admin_bundle(remote / "creds.json", "remote")
    await list_agents(master.target, load_admin_bundle(remote / "creds.json"))

    # A named export is its own identity and can be revoked alone.
    master.pki.export_admin_bundle(remote / "ops.json", name="ops")
    ops = load_admin_bundle(remote / "ops.json")
    await list_agents(master.target, ops)
    master.pki.revoke_admin("ops")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await list_agents(master.target, ops)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await list_agents(master.target, load_admin_bundle(remote / "creds.json"))
