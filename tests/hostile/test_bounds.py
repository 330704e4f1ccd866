"""Hostile: nothing an agent or a client sends can hurt the master or another operator.

Issue 10, items 7 (agent metadata) and 8 (commands), with a real master and
agents: the limits of DESIGN.md "Bounds" are refused with INVALID_ARGUMENT and
one line; text that passes them is shown escaped in tables and logs; stored
history can never make a listing exceed the message limit.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from sloth_core.client import MasterClient
from sloth_core.escape import shown
from sloth_core.proto import sloth_pb2 as pb
from tests.fleet import EXE, Fleet, admin_tls, agent_tls, wait_for
from tests.hostile.trust_support import RPC_TIMEOUT_S, hello_status, master_status, one_error

pytestmark = pytest.mark.timeout(120)

ESC = "\x1b"


def test_agent_metadata_beyond_the_limits_is_refused_in_one_line(fleet: Fleet) -> None:
    master = fleet.start_master()
    fleet.start_agent("evil")
    address = str(fleet.agents()["evil"]["address"])
    evil = agent_tls(fleet, "evil")

    def register(**fields: object) -> tuple[grpc.StatusCode, str]:
        base: dict[str, object] = {"name": "evil", "address": address, "instance_id": "x", "hostname": "h"}
        request = pb.RegisterRequest(**{**base, **fields})  # type: ignore[arg-type]
        return asyncio.run(hello_status(fleet.master_address, evil, request))

    bad = grpc.StatusCode.INVALID_ARGUMENT
    # 40 MB of labels once made `agent list` and every console fail.
    huge = {f"k{i}": "v" * 255 for i in range(160_000)}
    assert register(labels=huge) == (bad, "the agent has 160,000 labels; the limit is 64")
    assert register(labels={"k": "v" * 256}) == (bad, "the value of label 'k' is 256 characters long; the limit is 255")
    assert register(labels={"k" * 64: "v"}) == (bad, "a label key is 64 characters long; the limit is 63")
    assert register(labels={f"k{i}": "v" * 200 for i in range(30)})[1].endswith("the limit is 4,096")
    assert register(hostname=f"box{ESC}]0;owned{ESC}\\") == (
        bad, "the agent's hostname holds control characters: box\\x1b]0;owned\\x1b\\"
    )
    assert register(labels={"role": f"web{ESC}[2J"})[0] == bad
    assert register(version="1" * 256)[0] == bad
    assert register(os="Linux\x9b31m")[0] == bad
    forged = "127.0.0.1:1\n2026-01-01 00:00:00 INFO    agent root registered from everywhere"
    assert register(address=forged)[0] == bad
    assert register(address="no-port")[0] == bad
    for _, message in (register(address=forged), register(labels=huge)):
        assert "\n" not in message and len(message) < 200

    # The listing and the log are untouched by all of it.
    listed = fleet.cli("agent", "list")
    assert listed.returncode == 0 and len(listed.stdout) < 1000, listed.stderr
    assert fleet.agents()["evil"]["address"] == address
    log = master.text()
    assert "agent root registered from everywhere" not in log.replace("\\n2026", "")
    assert ESC not in log and "Traceback" not in log
    assert (fleet.master_dir / "master.db").stat().st_size < 5_000_000


def test_commands_are_bounded_utf8_without_nul(fleet: Fleet) -> None:
    # The default is 128 KiB, which is also what Linux lets one argv string be:
    # a lower configured limit shows the CLI's side of it.
    master = fleet.start_master("--max-command-bytes", "100000")
    agent = fleet.start_agent("a1")

    too_long = "true #" + "x" * 110_000
    error = one_error(fleet.cli("agent", "run", "a1", too_long), 255)
    assert error == "error: the command is 110,006 bytes; the master accepts at most 100,000"
    # NUL cannot pass through argv: send it the way another client would.
    async def nul() -> tuple[grpc.StatusCode, str]:
        run = pb.RunRequest(target=pb.Target(names=["a1"]), command="echo a\x00b")
        return await master_status(fleet.master_address, admin_tls(fleet), lambda s: s.Run(run, timeout=RPC_TIMEOUT_S).read())

    assert asyncio.run(nul()) == (grpc.StatusCode.INVALID_ARGUMENT, "the command holds a NUL byte, which bash cannot run")
    # Invalid UTF-8 on the command line: refused before it leaves, exit 255.
    import subprocess

    argv = [arg.encode() for arg in [*EXE, "agent", "run", "a1"]] + [b"echo \xff\xfe"]
    result = subprocess.run(argv, env=fleet.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert one_error(result, 255) == "error: the command is not valid UTF-8"

    # ...and from a raw client, with the bytes in the string field: not UNKNOWN.
    async def raw_invalid_utf8() -> tuple[grpc.StatusCode, str]:
        from sloth_core.client import MASTER_SERVER_NAME
        from sloth_core.transport import open_channel

        body = pb.Target(names=["a1"]).SerializeToString()
        payload = b"\x0a" + bytes([len(body)]) + body + b"\x12\x04ec\xffo"
        async with open_channel(fleet.master_address, admin_tls(fleet), server_name=MASTER_SERVER_NAME) as channel:
            call = channel.unary_stream("/sloth.v1.Master/Run", request_serializer=None, response_deserializer=None)
            try:
                async for _ in call(payload, timeout=RPC_TIMEOUT_S):
                    pass
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""

    assert asyncio.run(raw_invalid_utf8()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "the Run request could not be decoded: text fields must be valid UTF-8"
    )
    listed = json.loads(fleet.cli("runs", "list", "--json").stdout)
    assert listed == [], "a refused command left history behind"

    # A long command that passes is logged shortened: its first 200 characters and its length.
    long_ok = "true #" + "y" * 90_000
    assert fleet.cli("agent", "run", "a1", long_ok).returncode == 0
    for log in (master.text(), agent.text()):
        assert "y" * 194 + "… (90,006 chars)" in log and "y" * 300 not in log
    assert "Traceback" not in master.text() + agent.text()


def test_escape_sequences_in_commands_are_shown_never_obeyed(fleet: Fleet) -> None:
    master = fleet.start_master()
    fleet.start_agent("a1")
    command = f"true '{ESC}]0;pwned{ESC}\\{ESC}[2J' '\nINFO    agent root registered from everywhere'"
    assert fleet.cli("agent", "run", "a1", command).returncode == 0
    table = fleet.cli("runs", "list")
    assert table.returncode == 0
    text = table.stdout.decode()
    assert ESC not in text and shown(command.splitlines()[0]) in text
    assert len(text.splitlines()) == 2  # the header and one run: a newline forges no row
    show = fleet.cli("runs", "show", json.loads(fleet.cli("runs", "list", "--json").stdout)[0]["run_id"])
    assert show.returncode == 0 and ESC not in show.stdout.decode() + show.stderr.decode()
    log = master.text()
    assert ESC not in log
    assert not any(line.startswith("INFO    agent root") for line in log.splitlines())


def test_no_stored_history_can_break_a_listing(fleet: Fleet) -> None:
    # A master that once accepted huge commands (or an old database) keeps them.
    fleet.start_master("--max-command-bytes", str(11 * 1024 * 1024))
    fleet.start_agent("a1")

    async def flood() -> None:
        async with MasterClient(fleet.master_address, admin_tls(fleet)) as client:
            for i in range(7):
                async for _ in client.run(names=["a1"], command=f"true {i} #" + "z" * (10 * 1024 * 1024)):
                    pass

    asyncio.run(flood())
    wait_for(lambda: len(json.loads(fleet.cli("runs", "list", "--json").stdout)) == 7, what="7 runs in history")
    for argv in (["runs", "list", "--limit", "20"], ["runs", "list", "--json", "--limit", "1000"]):
        result = fleet.cli(*argv)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) < 100_000
    row = json.loads(fleet.cli("runs", "list", "--json").stdout)[0]
    assert row["command"].endswith("(10,485,768 chars in all; `runs show` has all of it)")
