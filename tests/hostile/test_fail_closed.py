"""Issue 10 item 5: fail closed. No plaintext port is ever open unless every party was told --insecure.

An agent registers before it listens: one started with --insecure against a
TLS master exits with the reason and never opens its port; one whose master
comes back requiring TLS closes its port and exits.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fleet import EXE, Fleet, wait_for

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connectable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PortWatch:
    """Tries to connect to a port every few ms until stopped; remembers any success."""

    def __init__(self, port: int) -> None:
        self.port, self.opened, self._stop = port, False, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.opened |= connectable(self.port)
            self._stop.wait(0.005)

    def stop(self) -> bool:
        self._stop.set()
        self._thread.join()
        return self.opened


def agent_argv(fleet: Fleet, name: str, port: int, tmp: Path, *extra: str) -> list[str]:
    return [*EXE, "agent", "start", "--name", name, "--master", fleet.master_address, "--port", str(port),
            "--bind-address", "127.0.0.1", "--data-dir", str(tmp / name), "--insecure", *extra]


def test_insecure_agent_against_tls_master_exits_without_opening_its_port(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()  # TLS
    port = free_port()
    watch = PortWatch(port)
    result = subprocess.run(agent_argv(fleet, "sneaky", port, tmp_path), env=fleet.env, capture_output=True, timeout=20)
    assert not watch.stop(), "the agent listened on a plaintext port for a TLS master"
    err = result.stderr.decode()
    assert result.returncode != 0, err
    assert f"error: the master at {fleet.master_address} refused our plaintext connection: it requires TLS" in err
    assert "without --insecure" in err and "Traceback" not in err
    assert "sneaky" not in fleet.agents()


def test_insecure_daemon_against_tls_master_reports_why_it_did_not_start(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()
    port = free_port()
    watch = PortWatch(port)
    result = subprocess.run(
        agent_argv(fleet, "sneaky", port, tmp_path, "--daemon"), env=fleet.env, capture_output=True, timeout=20
    )
    assert not watch.stop(), "the daemon listened on a plaintext port for a TLS master"
    err = result.stderr.decode()
    assert result.returncode != 0, err
    assert "agent sneaky failed to start" in err and "requires TLS" in err, err


def test_insecure_agent_listens_only_once_registered(insecure_fleet: Fleet, tmp_path: Path) -> None:
    master_port = free_port()
    insecure_fleet.master_address = f"127.0.0.1:{master_port}"  # not started yet
    port = free_port()
    agent = insecure_fleet.spawn(agent_argv(insecure_fleet, "early", port, tmp_path)[len(EXE):], "agent-early")
    wait_for(lambda: "will keep trying" in agent.text(), what="the agent to find no master")
    assert not connectable(port), "the agent listens before any master accepted it"
    insecure_fleet.start_master(port=master_port)
    wait_for(lambda: connectable(port), what="the agent to listen once registered")
    result = insecure_fleet.cli("agent", "run", "early", "echo hi", "--insecure")
    assert result.returncode == 0 and result.stdout.startswith(b"hi"), result.stderr.decode()


def test_insecure_agent_closes_its_port_when_the_master_comes_back_with_tls(
    insecure_fleet: Fleet, tmp_path: Path
) -> None:
    plain_master = insecure_fleet.start_master()
    port = free_port()
    agent = insecure_fleet.spawn(agent_argv(insecure_fleet, "a1", port, tmp_path)[len(EXE):], "agent-a1")
    wait_for(lambda: connectable(port), what="the agent to listen")
    plain_master.stop()
    tls = Fleet(home=tmp_path / "tls-home")
    tls.home.mkdir()
    try:
        tls.start_master(port=insecure_fleet.master_port)  # same address, now TLS
        agent.popen.wait(timeout=30)
    finally:
        tls.close()
    assert agent.popen.returncode != 0
    assert "requires TLS" in agent.text() and "Traceback" not in agent.text(), agent.text()
    assert not connectable(port)
