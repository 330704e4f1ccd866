"""Every mistake a user can make: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.fleet import Fleet, wait_for

pytestmark = pytest.mark.timeout(90)


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_unreachable_master_names_the_address(fleet: Fleet) -> None:
    master = fleet.start_master()
    master.stop()
    listed = fleet.cli("agent", "list", *fleet.client_flags())
    assert listed.returncode != 0
    assert fleet.master_address in one_line_error(listed)
    ran = fleet.cli("agent", "run", "a1", "echo hi", *fleet.client_flags())
    assert ran.returncode == 255
    assert "cannot reach the master" in one_line_error(ran)


def test_unknown_agent_lists_close_names(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("web-1")
    result = fleet.cli("agent", "run", "web-2", "echo hi", *fleet.client_flags())
    assert result.returncode == 255
    line = one_line_error(result)
    assert "unknown agent 'web-2'" in line and "web-1" in line
    got = fleet.cli("agent", "get", "wbe-1", *fleet.client_flags())
    assert got.returncode != 0 and "web-1" in one_line_error(got)


@pytest.mark.parametrize("name", ["bad name", "-dash-first", "a" * 64, "emoji😀", ""])
def test_invalid_agent_name(fleet: Fleet, name: str) -> None:
    result = fleet.cli("agent", "start", f"--name={name}", "--master", "127.0.0.1:1", *fleet.security_flags)
    assert result.returncode == 2
    assert "letters, digits" in one_line_error(result)


@pytest.mark.parametrize("address", ["host:notaport", "host:70000", "a:b:c", ":50053", "[::1"])
def test_malformed_master_address(fleet: Fleet, address: str) -> None:
    result = fleet.cli("agent", "list", "--master", address, *fleet.client_flags())
    assert result.returncode == 2
    assert "master address" in one_line_error(result)


def test_port_in_use_is_one_line(fleet: Fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fleet.cli("master", "--bind", "127.0.0.1", "-p", str(port), *fleet.security_flags, timeout=30)
    assert result.returncode != 0
    assert "in use" in one_line_error(result)


def test_agent_port_in_use_is_one_line(fleet: Fleet) -> None:
    fleet.start_master()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fleet.cli("agent", "start", "--name", "a1", "--master", fleet.master_address, "--port", str(port),
                           "--bind-address", "127.0.0.1", *fleet.security_flags, timeout=30)
    assert result.returncode != 0
    assert "in use" in one_line_error(result)


def test_empty_command(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    for command in ("", "   "):
        result = fleet.cli("agent", "run", "a1", command, *fleet.client_flags())
        assert result.returncode == 2
        assert "empty command" in one_line_error(result)
    missing = fleet.cli("agent", "run", "a1", *fleet.client_flags())
    assert missing.returncode == 2 and "missing COMMAND" in one_line_error(missing)
    for bad in ("nan", "-1", "inf"):
        timeout = fleet.cli("agent", "run", "a1", "true", "--timeout", bad, *fleet.client_flags())
        assert timeout.returncode == 2 and "--timeout" in one_line_error(timeout)


def test_second_agent_cannot_take_an_online_name(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    # The same name on the same machine is refused by the pid file's lock at
    # once; as if on another machine (its own pid file), the master refuses it.
    same_machine = fleet.start_agent("a1", wait=False)
    wait_for(lambda: not same_machine.alive(), what="the second local agent to give up")
    assert "agent a1 is already running" in same_machine.text()
    second = fleet.start_agent("a1", "--pid-file", str(fleet.home / "elsewhere.pid"), wait=False)
    wait_for(lambda: not second.alive(), what="the second agent to give up")
    assert second.popen.returncode != 0
    assert "held by an online agent" in second.text()
    assert "Traceback" not in second.text()
    assert fleet.agents()["a1"]["status"] == "online"
