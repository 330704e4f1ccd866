"""Find the local master: its recorded address, per data dir; `master status` says everything."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.fleet import HEARTBEAT_S, Fleet, wait_for

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_master(fleet: Fleet, *extra: str) -> None:
    started = fleet.cli("master", "-p", str(free_port()), "--join-port", "0", "--bind", "127.0.0.1",
                        "--heartbeat-interval", str(HEARTBEAT_S), "--daemon", *extra)
    assert started.returncode == 0, started.stderr.decode()


def test_clients_and_agents_find_a_master_on_another_port(fleet: Fleet) -> None:
    assert "SLOTH_RUNNER_MASTER" not in fleet.env
    daemon_master(fleet)
    try:
        agent = fleet.cli("agent", "start", "--name", "d1", "--port", "0", "--bind-address", "127.0.0.1", "--daemon")
        assert agent.returncode == 0, agent.stderr.decode()
        listed = fleet.cli("agent", "list", "--json")
        assert listed.returncode == 0, listed.stderr.decode()
        assert [a["name"] for a in json.loads(listed.stdout)] == ["d1"]
        assert fleet.cli("agent", "run", "d1", "echo", "found").stdout == b"found\n"

        status = fleet.cli("master", "status")
        out = status.stdout.decode()
        address = json.loads((fleet.master_dir / "master.json").read_text())
        assert status.returncode == 0
        for expected in (f"address:   127.0.0.1:{address['port']}", f"join port: {address['join_port']}",
                         f"data dir:  {fleet.master_dir}", f"log file:  {fleet.home / 'log' / 'master.log'}",
                         "uptime:", "agents:    1 online / 1 total"):
            assert expected in out, out
        assert fleet.cli("agent", "stop", "--local", "d1").returncode == 0
    finally:
        fleet.cli("master", "stop")


def test_agent_start_honours_the_environment_variable(fleet: Fleet) -> None:
    fleet.start_master()
    env = fleet.env  # SLOTH_RUNNER_MASTER is set now, and no --master below
    (fleet.master_dir / "master.json").unlink()  # so only the variable can lead there
    proc = fleet.spawn(["agent", "start", "--name", "e1", "--port", "0", "--bind-address", "127.0.0.1"], "agent-e1", env=env)
    wait_for(lambda: "registered with the master" in proc.text() or not proc.alive(), what="e1 to register")
    assert f"registered with the master at {fleet.master_address}" in proc.text()


def test_two_masters_with_their_own_data_dirs(fleet: Fleet, tmp_path: Path) -> None:
    second = tmp_path / "second"
    daemon_master(fleet)
    try:
        daemon_master(fleet, "--data-dir", str(second))  # not "already running": another data dir
        one = fleet.cli("master", "status").stdout.decode()
        two = fleet.cli("master", "status", "--data-dir", str(second)).stdout.decode()
        port_of = lambda d: json.loads((d / "master.json").read_text())["port"]  # noqa: E731
        assert f":{port_of(fleet.master_dir)}" in one and f":{port_of(second)}" in two
        log_one = next(line for line in one.splitlines() if "log file" in line).split()[-1]
        log_two = next(line for line in two.splitlines() if "log file" in line).split()[-1]
        assert log_one != log_two and Path(log_two).exists()
        pids = {p.name for p in (fleet.home / "run").glob("master*.pid")}
        assert len(pids) == 2
        listed = fleet.cli("agent", "list", "--master-data-dir", str(second), "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
        assert fleet.cli("master", "stop", "--data-dir", str(second)).returncode == 0
        assert fleet.cli("master", "status", "--data-dir", str(second)).returncode == 3
        assert fleet.cli("master", "status").returncode == 0  # the first one is untouched
    finally:
        fleet.cli("master", "stop")
        fleet.cli("master", "stop", "--data-dir", str(second))
