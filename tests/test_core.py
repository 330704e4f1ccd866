"""The core story: a master, agents, `agent list`, `agent run`, across real processes."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fleet import HEARTBEAT_S, Fleet, wait_for

pytestmark = pytest.mark.timeout(90)


def run(fleet: Fleet, *args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return fleet.cli("agent", "run", *args, *fleet.client_flags(), timeout=timeout)


def test_agents_register_and_are_listed(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("web-1", "--label", "role=web")
    fleet.start_agent("db-1")
    agents = fleet.agents()
    assert set(agents) == {"web-1", "db-1"}
    assert agents["web-1"]["status"] == "online"
    assert agents["web-1"]["labels"] == {"role": "web"}
    assert str(agents["web-1"]["address"]).startswith("127.0.0.1:")
    table = fleet.cli("agent", "list", *fleet.client_flags()).stdout.decode()
    for column in ("NAME", "ADDRESS", "STATUS", "VERSION", "LABELS", "LAST SEEN", "RUNNING"):
        assert column in table
    assert "role=web" in table
    detail = fleet.cli("agent", "get", "web-1", *fleet.client_flags()).stdout.decode()
    assert "Hostname:" in detail and "online" in detail


def test_run_echo_prints_output_and_success_box(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    result = run(fleet, "a1", "echo hello-sloth", "--summary")
    assert result.returncode == 0
    assert result.stdout == b"hello-sloth\n"  # the box goes to stderr, as ssh keeps stdout for data
    err = result.stderr.decode()
    assert "Command Execution Result on a1" in err
    assert "SUCCESS" in err and "Exit code: 0" in err


def test_remote_exit_code_is_the_cli_exit_code_and_stderr_is_kept_apart(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    result = run(fleet, "a1", "echo to-out; echo to-err >&2; exit 3", "--summary")
    assert result.returncode == 3
    out_lines, err_lines = result.stdout.decode().splitlines(), result.stderr.decode().splitlines()
    assert out_lines[0] == "to-out" and "to-err" not in out_lines
    assert "to-err" in err_lines and "to-out" not in err_lines
    assert "ERROR" in result.stderr.decode() and "Exit code: 3" in result.stderr.decode()


def test_binary_output_arrives_byte_exact_with_raw(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    payload_file = fleet.home / "payload.bin"
    payload_file.write_bytes(bytes(range(256)) * 16 + b"\xff\xfe\x00invalid utf-8 \xc3\x28")
    result = run(fleet, "a1", f"cat {payload_file}; head -c 4096 /dev/urandom >/dev/null", "--raw")
    assert result.returncode == 0
    assert result.stdout == payload_file.read_bytes()
    # Without --raw the remote stdout is passed on byte for byte too, as ssh does.
    shown = run(fleet, "a1", f"cat {payload_file}")
    assert shown.returncode == 0 and shown.stdout == payload_file.read_bytes()


def test_random_binary_payload_round_trips(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    result = run(fleet, "a1", "head -c 4096 /dev/urandom | tee /dev/stderr", "--raw")
    assert result.returncode == 0
    assert len(result.stdout) == 4096 and result.stderr.endswith(result.stdout)


def test_json_output(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    result = run(fleet, "a1", "echo out; echo err >&2; exit 2", "--json")
    assert result.returncode == 2
    row = json.loads(result.stdout)
    assert row["agent"] == "a1" and row["exit_code"] == 2 and row["status"] == "failed"
    assert row["stdout"] == "out\n" and row["stderr"] == "err\n"
    assert row["duration_s"] >= 0 and row["started_at"] > 0


def test_killed_agent_goes_offline_and_runs_on_it_are_refused(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("a1")
    killed_at = time.monotonic()
    agent.kill()
    # Its session's socket closes with it: offline at once, no missed beats to wait for.
    fleet.wait_status("a1", "offline", timeout=5)
    assert time.monotonic() - killed_at < 5
    result = run(fleet, "a1", "echo hi")
    assert result.returncode == 255
    assert "offline" in result.stderr.decode()


def test_master_restart_recovers_registry_and_agents_come_back(fleet: Fleet) -> None:
    master = fleet.start_master()
    fleet.start_agent("a1", "--label", "zone=1")
    fleet.start_agent("a2")
    master.kill(signal.SIGKILL)
    fleet.start_master(port=fleet.master_port)
    restarted = time.monotonic()
    agents = fleet.agents()
    assert set(agents) == {"a1", "a2"} and agents["a1"]["labels"] == {"zone": "1"}
    # Within two heartbeats the agents have beaten into the new master: their
    # "last seen" moves past what the master recovered from disk.
    recovered = {name: a["last_seen"] for name, a in agents.items()}
    wait_for(
        lambda: all(a["status"] == "online" and a["last_seen"] > recovered[n] for n, a in fleet.agents().items()),
        timeout=10, what="agents beating into the restarted master",
    )
    assert time.monotonic() - restarted < 2 * HEARTBEAT_S + 3
    assert run(fleet, "a2", "echo back").stdout.startswith(b"back\n")


def test_stop_and_delete_agent(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("a1")
    stopped = fleet.cli("agent", "stop", "a1", *fleet.client_flags())
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not agent.alive(), what="agent process to exit")
    assert fleet.agents()["a1"]["status"] == "stopped"
    refused = fleet.cli("agent", "delete", "a1", *fleet.client_flags())
    assert refused.returncode != 0 and "--yes" in refused.stderr.decode()
    deleted = fleet.cli("agent", "delete", "a1", "--yes", *fleet.client_flags())
    assert deleted.returncode == 0
    assert fleet.agents() == {}


def test_daemon_master_and_agent_start_status_stop(fleet: Fleet) -> None:
    port = _free_port()
    started = fleet.cli("master", "-p", str(port), "--bind", "127.0.0.1", "--join-port", str(_free_port()),
                        "--heartbeat-interval", str(HEARTBEAT_S), "--daemon", *fleet.security_flags)
    assert started.returncode == 0, started.stderr.decode()
    fleet.master_address = f"127.0.0.1:{port}"
    try:
        status = fleet.cli("master", "status")
        assert status.returncode == 0 and b"running" in status.stdout
        agent = fleet.cli("agent", "start", "--name", "d1", "--master", fleet.master_address, "--port", "0",
                          "--bind-address", "127.0.0.1", "--daemon", *fleet.security_flags)
        assert agent.returncode == 0, agent.stderr.decode()
        assert fleet.agents()["d1"]["status"] == "online"
        again = fleet.cli("agent", "start", "--name", "d1", "--master", fleet.master_address, "--daemon",
                          *fleet.security_flags)
        assert again.returncode != 0 and b"already running" in again.stderr
        assert fleet.cli("agent", "stop", "d1", "--local").returncode == 0
        # A graceful stop says goodbye: "stopped" at once, not "offline" after three beats.
        assert fleet.agents()["d1"]["status"] == "stopped"
    finally:
        stopped = fleet.cli("master", "stop")
    assert stopped.returncode == 0
    status = fleet.cli("master", "status")
    assert status.returncode == 3 and b"not running" in status.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_agent_restarted_on_another_port_takes_its_name_back(fleet: Fleet) -> None:
    fleet.start_master()
    first = fleet.start_agent("a1")
    old_address = fleet.agents()["a1"]["address"]
    first.stop()
    fleet.start_agent("a1")  # a new ephemeral port, well within three heartbeats
    agent = fleet.agents()["a1"]
    assert agent["status"] == "online" and agent["address"] != old_address
    assert fleet.cli("agent", "run", "a1", "echo ok", *fleet.client_flags()).returncode == 0
