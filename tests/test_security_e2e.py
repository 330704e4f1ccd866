"""Security end to end: real `sloth-runner` master and agent processes.

Every check looks at what a person sees: the exit code and the one-line
``error:`` message of a command (never a traceback), the log of an agent,
or the status of a raw gRPC call made with stolen or foreign credentials.
"Remote" machines are simulated by other homes (``SLOTH_RUNNER_HOME``), so
they cannot find the master's token or admin credentials on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from sloth_core.client import MASTER_SERVER_NAME
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc as rpc
from sloth_core.security import layout
from sloth_core.security.names import JOIN_SERVER_NAME, agent_server_name
from sloth_core.transport import TLSConfig, open_channel
from tests.fleet import EXE, Fleet, Proc, admin_tls, agent_tls, wait_for

pytestmark = pytest.mark.timeout(60)

RPC_TIMEOUT_S = 5.0
MakeFleet = Callable[..., Fleet]
Status = tuple[grpc.StatusCode, str]


# ---------------------------------------------------------------- helpers


@pytest.fixture
def fleets(tmp_path: Path) -> Iterator[MakeFleet]:
    """More homes next to the ``fleet`` one: other machines, other masters."""
    made: list[Fleet] = []

    def make(name: str, *, insecure: bool = False, master: str = "") -> Fleet:
        fleet = Fleet(home=tmp_path / name, insecure=insecure)
        fleet.home.mkdir()
        fleet.master_address = master
        made.append(fleet)
        return fleet

    yield make
    for fleet in reversed(made):
        fleet.close()


def one_error(text: str, *, only_warnings_besides: bool = False) -> str:
    """The single ``error:`` line of ``text`` (stderr or a log); no traceback."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, text
    if only_warnings_besides:
        assert all(line.startswith(("error:", "warning:")) for line in lines), text
    return errors[0]


def cli_error(result: subprocess.CompletedProcess[bytes]) -> str:
    """A client command failed with exit 1 and nothing but one error line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    return one_error(result.stderr.decode(), only_warnings_besides=True)


def failed_start(fleet: Fleet, name: str, *extra: str, timeout: float = 20.0) -> tuple[int, str, Proc]:
    """Start an agent that must refuse to start; its exit code, log and process."""
    proc = fleet.start_agent(name, *extra, wait=False)
    try:
        code = proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"agent {name} kept running instead of failing:\n{proc.text()}") from None
    return code, proc.text(), proc


def token_of(fleet: Fleet, *args: str) -> str:
    result = fleet.cli("master", "token", *args)
    assert result.returncode == 0, result.stderr.decode()
    token = result.stdout.decode().strip()
    assert token.startswith("SLOTH1.") and "\n" not in token
    return token


def join_port(fleet: Fleet) -> int:
    return int(json.loads((fleet.master_dir / "master.json").read_text())["join_port"])


def agent_dir(fleet: Fleet, name: str) -> Path:
    return fleet.home / "agents" / name


async def status_of(call: Awaitable[object]) -> Status:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def master_status(
    address: str, tls: TLSConfig | None, call: Callable[[rpc.MasterStub], Awaitable[object]]
) -> Status:
    async with open_channel(address, tls, server_name=MASTER_SERVER_NAME if tls else None) as channel:
        return await status_of(call(rpc.MasterStub(channel)))


async def hello_status(address: str, tls: TLSConfig | None, name: str) -> Status:
    """Open an agent session to the master saying hello as agent ``name``."""
    async with open_channel(address, tls, server_name=MASTER_SERVER_NAME if tls else None) as channel:
        call = rpc.AgentSessionStub(channel).Connect(timeout=RPC_TIMEOUT_S)

        async def exchange() -> None:
            await call.write(pb.AgentUp(hello=pb.RegisterRequest(name=name, instance_id="evil")))
            await call.read()

        return await status_of(exchange())


async def execute_status(address: str, tls: TLSConfig | None, agent: str, command: str) -> Status:
    async with open_channel(address, tls, server_name=agent_server_name(agent) if tls else None) as channel:
        stub = rpc.AgentStub(channel)
        return await status_of(stub.Execute(pb.ExecuteRequest(run_id="r-stolen", command=command), timeout=RPC_TIMEOUT_S).read())


def list_agents(stub: rpc.MasterStub) -> Awaitable[object]:
    return stub.ListAgents(pb.ListAgentsRequest(), timeout=RPC_TIMEOUT_S)


# ---------------------------------------------------------------- 1, 2: joining


def test_remote_agent_joins_with_a_token_and_reuses_its_certificate(fleet: Fleet, fleets: MakeFleet) -> None:
    master = fleet.start_master()
    token = token_of(fleet)
    remote = fleets("remote", master=fleet.master_address)

    agent = remote.start_agent("r1", "--token", token)
    assert "joining the master" in agent.text()
    result = fleet.cli("agent", "run", "r1", "echo hi from $SLOTH_AGENT")
    assert result.returncode == 0 and result.stdout.startswith(b"hi from r1\n"), result.stderr

    # The same, with the token in the environment instead of on the command line.
    remote.start_agent("r2", env={**remote.env, "SLOTH_RUNNER_TOKEN": token})
    assert set(fleet.agents()) == {"r1", "r2"}

    # Restarted without a token, it uses the certificate it stored.
    cert = layout.pki_dir(agent_dir(remote, "r1")) / layout.AGENT_CERT
    stored = cert.read_bytes()
    port = str(fleet.agents()["r1"]["address"]).rsplit(":", 1)[1]
    agent.stop()
    again = remote.start_agent("r1", "--port", port)  # same address: the master knows it is the same agent
    assert "joining the master" not in again.text()
    assert cert.read_bytes() == stored
    assert fleet.cli("agent", "run", "r1", "echo again").stdout.startswith(b"again\n")

    # Neither secrets nor keys are ever logged.
    secret = token.split(".")[3]
    for proc in (master, agent, again):
        assert secret not in proc.text() and "PRIVATE KEY" not in proc.text()


def test_agent_without_token_and_without_local_master_says_to_pass_one(fleets: MakeFleet) -> None:
    remote = fleets("remote", master="127.0.0.1:1")
    code, log, _ = failed_start(remote, "lonely")
    assert code == 1
    error = one_error(log)
    assert "pass --token TOKEN" in error and "sloth-runner master token" in error


# ---------------------------------------------------------------- 3: bad tokens


def _other_master_on_the_same_join_port(fleet: Fleet, fleets: MakeFleet) -> str:
    """A token of another master whose join port number is the same (another host)."""
    other = fleets("other-master")
    port = join_port(fleet)
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", port))
    except OSError:  # no 127.0.0.2 here: move the other master's token to our port
        other.start_master()
        parts = token_of(other).split(".")
        return ".".join([parts[0], str(port), *parts[2:]])
    other.start_master("--bind", "127.0.0.2", "--join-port", str(port))
    return token_of(other)


def test_each_bad_token_fails_with_its_own_message(fleet: Fleet, fleets: MakeFleet) -> None:
    fleet.start_master()
    remote = fleets("remote", master=fleet.master_address)
    token = token_of(fleet)

    def refused(name: str, bad_token: str) -> str:
        code, log, _ = failed_start(remote, name, "--token", bad_token)
        assert code == 1
        assert not (layout.pki_dir(agent_dir(remote, name)) / layout.AGENT_CERT).exists()
        return one_error(log)

    messages: dict[str, str] = {}
    parts = token.split(".")
    messages["malformed"] = refused("m1", token[:-9])
    assert "join token is malformed" in messages["malformed"]

    parts[3] = "A" * len(parts[3])
    messages["tampered"] = refused("t1", ".".join(parts))
    assert messages["tampered"] == "error: join token is invalid or was rotated"

    messages["foreign"] = refused("f1", _other_master_on_the_same_join_port(fleet, fleets))
    assert f"the master at 127.0.0.1:{join_port(fleet)} is not the one this token is for" in messages["foreign"]

    # Rotation: the old token is dead, agents joined with it keep working.
    remote.start_agent("before-rotation", "--token", token)
    rotated = fleet.cli("master", "token", "rotate")
    assert rotated.returncode == 0
    new_token = rotated.stdout.decode().strip()
    assert new_token != token and token_of(fleet) == new_token
    messages["rotated"] = refused("o1", token)
    assert messages["rotated"] == "error: join token is invalid or was rotated"
    assert fleet.cli("agent", "run", "before-rotation", "true").returncode == 0
    remote.start_agent("after-rotation", "--token", new_token)

    once = token_of(fleet, "create", "--once")
    remote.start_agent("first", "--token", once)
    messages["used"] = refused("second", once)
    assert messages["used"] == "error: join token was already used"

    short = token_of(fleet, "create", "--ttl", "1s")
    state = json.loads((layout.pki_dir(fleet.master_dir) / layout.TOKENS_STATE_FILE).read_text())
    expires_at = state["tokens"][short.split(".")[2]]["expires_at"]
    assert expires_at - time.time() <= 1.0
    wait_for(lambda: time.time() > expires_at, timeout=5, what="the token to expire")
    messages["expired"] = refused("late", short)
    assert messages["expired"] == "error: join token expired"

    # Only a tampered and a rotated token read the same: the master cannot tell them apart.
    assert len(set(messages.values())) == len(messages) - 1
    assert set(fleet.agents()) == {"before-rotation", "after-rotation", "first"}


# ---------------------------------------------------------------- 4: --insecure


def test_insecure_works_only_when_both_ends_use_it(fleet: Fleet, fleets: MakeFleet) -> None:
    fleet.start_master()
    plain = fleets("plain", insecure=True)
    plain.start_master()

    # Both ends plaintext: works, and says so loudly each time.
    plain.start_agent("p1")
    result = plain.cli("agent", "run", "p1", "echo plain", "--insecure")
    assert result.returncode == 0 and result.stdout.startswith(b"plain\n")
    assert result.stderr.decode().startswith("warning: --insecure")

    # Insecure CLI -> secure master.
    error = cli_error(fleet.cli("agent", "list", "--insecure"))
    assert f"the master at {fleet.master_address} refused our plaintext connection: it requires TLS" in error

    # Secure CLI (valid admin credentials of another master) -> insecure master.
    error = cli_error(fleet.cli("agent", "list", "--master", plain.master_address))
    assert f"the master at {plain.master_address} refused our connection" in error
    assert "--insecure if the master runs without TLS" in error

    # Secure CLI on the insecure master's machine: no credentials there .
    cli_error(plain.cli("agent", "list"))

    # Insecure agent -> secure master: never registers, says why and exits
    # (tests/hostile/test_fail_closed.py proves it never served a port).
    agent = fleet.start_agent("sneaky", "--insecure", wait=False)
    assert agent.popen.wait(timeout=30) != 0
    assert f"the master at {fleet.master_address} refused our" in agent.text()
    assert "registered with the master" not in agent.text() and "Traceback" not in agent.text()
    assert "sneaky" not in fleet.agents()


def test_insecure_agent_is_told_to_drop_insecure(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("sneaky", "--insecure", wait=False)
    assert agent.popen.wait(timeout=30) != 0
    log = agent.text()
    assert "refused our certificate" not in log and "--credentials" not in log, log
    assert "without --insecure" in log or "requires TLS" in log, log


def test_secure_cli_next_to_a_local_insecure_master_suggests_insecure(fleets: MakeFleet) -> None:
    plain = fleets("plain", insecure=True)
    plain.start_master()
    assert "--insecure" in cli_error(plain.cli("agent", "list"))


# ---------------------------------------------------------------- 5: credentials bundle


def test_exported_bundle_works_from_another_home(fleet: Fleet, fleets: MakeFleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    operator = fleets("operator", master=fleet.master_address)
    bundle = operator.home / "ops.json"

    exported = fleet.cli("master", "credentials", "--out", str(bundle))
    assert exported.returncode == 0 and f"--credentials {bundle}" in exported.stdout.decode()
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600

    error = cli_error(operator.cli("agent", "list"))
    assert "no usable admin credentials" in error and "--credentials" in error

    result = operator.cli("agent", "run", "a1", "echo via-flag", "--credentials", str(bundle))
    assert result.returncode == 0 and result.stdout.startswith(b"via-flag\n"), result.stderr
    with_env = {**operator.env, "SLOTH_RUNNER_CREDENTIALS": str(bundle)}
    listed = operator.cli("agent", "list", "--json", env=with_env)
    assert listed.returncode == 0 and [a["name"] for a in json.loads(listed.stdout)] == ["a1"]

    missing = operator.home / "missing.json"
    assert cli_error(operator.cli("agent", "list", "--credentials", str(missing))) == (
        f"error: credentials file not found at {missing}"
    )
    garbage = operator.home / "garbage.json"
    garbage.write_text("not json at all")
    error = cli_error(operator.cli("agent", "list", env={**operator.env, "SLOTH_RUNNER_CREDENTIALS": str(garbage)}))
    assert error == f"error: {garbage} is not a sloth-runner credentials file; export a new one on the master"
    document = json.loads(bundle.read_text())
    damaged = operator.home / "damaged.json"
    damaged.write_text(json.dumps({**document, "key_pem": "lost in a copy-paste"}))
    assert cli_error(operator.cli("agent", "list", "--credentials", str(damaged))) == (
        f"error: the credentials in {damaged} are damaged (not PEM certificates and key)"
    )
    # A key that looks like PEM but is not one is only caught by the TLS stack: still one line.
    subtle = operator.home / "subtle.json"
    subtle.write_text(json.dumps({**document, "key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}))
    cli_error(operator.cli("agent", "list", "--credentials", str(subtle)))


# ---------------------------------------------------------------- 6: stolen and foreign credentials


def test_agent_certificate_cannot_command_or_impersonate(fleet: Fleet, fleets: MakeFleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    other = fleets("other")
    other.start_master()
    other.start_agent("b1")

    a1, a2_address = agent_tls(fleet, "a1"), str(fleet.agents()["a2"]["address"])
    ours, foreign, foreign_admin = admin_tls(fleet), agent_tls(other, "b1"), admin_tls(other)
    # Foreign certificates that trust our CA: only the server can refuse them.
    foreign_agent = TLSConfig(ours.ca_pem, foreign.cert_pem, foreign.key_pem)
    other_admin = TLSConfig(ours.ca_pem, foreign_admin.cert_pem, foreign_admin.key_pem)
    marker = fleet.home / "pwned"
    master = fleet.master_address
    join_root = (layout.pki_dir(fleet.master_dir) / layout.JOIN_CERT).read_bytes()

    async def probes() -> dict[str, tuple[grpc.StatusCode, str]]:
        run = pb.RunRequest(target=pb.Target(names=["a2"]), command=f"touch {marker}")
        results = {
            "admin lists": await master_status(master, ours, list_agents),
            "a1 executes on a2": await execute_status(a2_address, a1, "a2", f"touch {marker}"),
            "admin executes on a2": await execute_status(a2_address, ours, "a2", f"touch {marker}"),
            "a1 lists": await master_status(master, a1, list_agents),
            "a1 runs": await master_status(master, a1, lambda s: s.Run(run, timeout=RPC_TIMEOUT_S).read()),
            "a1 deletes": await master_status(master, a1, lambda s: s.DeleteAgent(pb.AgentRef(name="a2"), timeout=RPC_TIMEOUT_S)),
            "a1 registers as a2": await hello_status(master, a1, "a2"),
            "a1 registers as ghost": await hello_status(master, a1, "ghost"),
            "plaintext to master": await master_status(master, None, list_agents),
            "plaintext to agent": await execute_status(a2_address, None, "a2", f"touch {marker}"),
            "foreign agent to master": await hello_status(master, foreign_agent, "b1"),
            "foreign admin to master": await master_status(master, other_admin, list_agents),
            "foreign admin to agent": await execute_status(a2_address, other_admin, "a2", f"touch {marker}"),
        }
        # The join port takes clients without certificates: it serves nothing else.
        async with open_channel(
            f"127.0.0.1:{join_port(fleet)}", None, server_name=JOIN_SERVER_NAME, root_pem=join_root
        ) as channel:
            results["master rpc on join port"] = await status_of(list_agents(rpc.MasterStub(channel)))
        return results

    results = asyncio.run(probes())
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert results.pop("admin lists")[0] == grpc.StatusCode.OK  # the probes can succeed at all
    assert results.pop("a1 executes on a2") == (denied, "only the master may do this; the caller is agent:a1")
    assert results.pop("admin executes on a2") == (denied, "only the master may do this; the caller is admin:local")
    for probe in ("a1 lists", "a1 runs", "a1 deletes"):
        assert results.pop(probe) == (denied, "only an admin may do this; the caller is agent:a1"), probe
    for probe, name in (("a1 registers as a2", "a2"), ("a1 registers as ghost", "ghost")):
        assert results.pop(probe) == (denied, f"the caller's certificate is for agent 'a1', not {name!r}"), probe
    assert results.pop("master rpc on join port")[0] == grpc.StatusCode.UNIMPLEMENTED
    for probe, (code, _) in results.items():  # refused in the TLS handshake
        assert code == grpc.StatusCode.UNAVAILABLE, probe

    assert not marker.exists()
    agents = fleet.agents()
    assert set(agents) == {"a1", "a2"} and agents["a2"]["address"] == a2_address
    assert all(agent["status"] == "online" for agent in agents.values())


# ---------------------------------------------------------------- 7: revocation


def test_deleted_agent_cannot_register_again(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("a1")
    deleted = fleet.cli("agent", "delete", "a1", "--yes")
    assert deleted.returncode == 0 and deleted.stdout == b"agent a1 deleted\n"
    wait_for(lambda: not agent.alive(), what="the deleted agent to be shut down")
    assert fleet.agents() == {}

    started = time.monotonic()
    code, log, _ = failed_start(fleet, "a1")
    assert code == 1 and time.monotonic() - started < 10
    assert one_error(log) == "error: the certificate of agent:a1 was revoked; re-join with a new token"
    assert len(log.splitlines()) <= 3, log  # one try, no retry loop
    assert "registered with the master" not in log

    async def hello() -> tuple[grpc.StatusCode, str]:
        return await hello_status(fleet.master_address, agent_tls(fleet, "a1"), "a1")

    assert asyncio.run(hello()) == (
        grpc.StatusCode.PERMISSION_DENIED, "the certificate of agent:a1 was revoked; re-join with a new token"
    )
    assert fleet.agents() == {}


def test_revoked_agent_rejoins_with_a_new_token(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("a1")
    assert fleet.cli("agent", "delete", "a1", "--yes").returncode == 0
    wait_for(lambda: not agent.alive(), what="the deleted agent to be shut down")
    rotated = fleet.cli("master", "token", "rotate").stdout.decode().strip()
    fleet.start_agent("a1", "--token", rotated)  # its old certificate is revoked: it joins again with the token
    assert fleet.cli("agent", "run", "a1", "true").returncode == 0


def test_a_master_never_loads_cryptography_fresh_or_restarted(fleet: Fleet) -> None:
    """Its CA and its agents' certificates are made in a child (security/signer.py); a restarted
    master reads serials from the DER (security/der.py) to check revocations: 11 MB it never holds."""
    master = fleet.start_master()
    fleet.start_agent("a1")
    doomed = fleet.start_agent("a2")
    with open(f"/proc/{master.pid}/maps") as f:
        assert "cryptography" not in f.read(), "the fresh master made its CA and signed two joins itself"
    master.stop()
    master = fleet.start_master(port=fleet.master_port)
    wait_for(lambda: all(a["status"] == "online" for a in fleet.agents().values()) and len(fleet.agents()) == 2,
             timeout=15, what="both agents back on the restarted master")
    assert fleet.cli("agent", "run", "a1", "echo ok").stdout == b"ok\n"
    assert fleet.cli("agent", "delete", "a2", "--yes").returncode == 0
    wait_for(lambda: not doomed.alive(), what="the deleted agent to be shut down")

    async def hello() -> tuple[grpc.StatusCode, str]:
        return await hello_status(fleet.master_address, agent_tls(fleet, "a2"), "a2")

    assert asyncio.run(hello()) == (
        grpc.StatusCode.PERMISSION_DENIED, "the certificate of agent:a2 was revoked; re-join with a new token"
    )
    with open(f"/proc/{master.pid}/maps") as f:
        assert "cryptography" not in f.read()


# ---------------------------------------------------------------- 8: audit


def test_runs_record_the_requesting_identity(fleet: Fleet, fleets: MakeFleet) -> None:
    from sloth_core.security.pki import MasterPKI

    fleet.start_master()
    fleet.start_agent("a1")
    operator = fleets("operator", master=fleet.master_address)
    assert fleet.cli("agent", "run", "a1", "echo local").returncode == 0

    # A named bundle, made through the PKI API here (the CLI is tested in tests/hostile).
    bundle = operator.home / "ops.json"
    MasterPKI.load(fleet.master_dir).export_admin_bundle(bundle, "ops")
    result = operator.cli("agent", "run", "a1", "echo remote", "--credentials", str(bundle))
    assert result.returncode == 0, result.stderr

    listed = fleet.cli("runs", "list", "--json")
    assert listed.returncode == 0
    by = {run["command"]: run["requested_by"] for run in json.loads(listed.stdout)}
    assert by == {"echo local": "admin:local", "echo remote": "admin:ops"}
    table = fleet.cli("runs", "list").stdout.decode()
    assert "admin:ops" in table and "admin:local" in table

    # Revoking that operator (from another process) cuts it off at once.
    MasterPKI.load(fleet.master_dir).revoke_admin("ops")
    error = cli_error(operator.cli("agent", "list", "--credentials", str(bundle)))
    assert error.startswith("error: the certificate of admin:ops was revoked")
    assert fleet.cli("agent", "list").returncode == 0


# ---------------------------------------------------------------- 9: file modes


def test_keys_are_private_files_in_private_dirs(fleet: Fleet, fleets: MakeFleet) -> None:
    fleet.start_master()
    fleet.start_agent("local")
    remote = fleets("remote", master=fleet.master_address)
    remote.start_agent("far", "--token", token_of(fleet))

    master_pki = layout.pki_dir(fleet.master_dir)
    agent_pkis = [layout.pki_dir(agent_dir(fleet, "local")), layout.pki_dir(agent_dir(remote, "far"))]
    expected = {*layout.MASTER_KEYS, layout.TOKEN_FILE, layout.TOKENS_STATE_FILE, layout.LEDGER_FILE}
    assert expected <= {p.name for p in master_pki.iterdir()}
    for pki in agent_pkis:
        assert {layout.AGENT_KEY, layout.AGENT_CERT, layout.AGENT_CA} <= {p.name for p in pki.iterdir()}
    for directory in (fleet.master_dir, master_pki, *agent_pkis):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for pki in (master_pki, *agent_pkis):
        for path in pki.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# ---------------------------------------------------------------- 10: the quick start


def test_demo_runs_secure_with_no_flags_and_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTH_RUNNER_")}
    env.update({"TMPDIR": str(tmp_path / "tmp"), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    out = tmp_path / "demo.out"
    with open(out, "wb") as log:
        demo = subprocess.Popen(
            [*EXE, "demo", "--no-console"], env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def instructions() -> re.Match[str] | None:
            assert demo.poll() is None, out.read_text()
            return re.search(r"export SLOTH_RUNNER_HOME=(\S+) SLOTH_RUNNER_MASTER=(\S+)", out.read_text())

        found = wait_for(instructions, timeout=40, what="the demo's instructions")
        assert isinstance(found, re.Match)
        home, master = Path(found[1]), found[2]
        assert home.parent == tmp_path / "tmp"
        assert json.loads((home / "master" / "master.json").read_text())["insecure"] is False
        user = Fleet(home=home)
        user.master_address = master
        wait_for(lambda: len(user.agents()) == 3 and {a["status"] for a in user.agents().values()} == {"online"},
                 what="the demo's agents to be online")
        result = user.cli("agent", "run", "demo-1", "echo hello from $SLOTH_AGENT")
        assert result.returncode == 0 and result.stdout.startswith(b"hello from demo-1\n"), result.stderr
        assert "requires TLS" in cli_error(user.cli("agent", "list", "--insecure"))
        pids = [int(p.read_text()) for p in (home / "run").glob("*.pid")]
        assert len(pids) == 4

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in its terminal
        assert demo.wait(timeout=20) == 0, out.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert "Traceback" not in out.read_text()
    assert not home.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

