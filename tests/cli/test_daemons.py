"""Daemons behave: rotating logs, locked pid files, one log line per event, prompt stops."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest

from sloth_core.cli import daemon, logs
from tests.cli.test_local_master import free_port
from tests.fleet import EXE, HEARTBEAT_S, Fleet, wait_for

pytestmark = pytest.mark.timeout(120)


def test_log_files_rotate_by_size(tmp_path: Path) -> None:
    log_file = tmp_path / "master.log"
    try:
        logs.setup(log_file=log_file, max_bytes=4096)
        logs.setup(log_file=log_file, max_bytes=4096)  # again: replaces, never doubles
        for i in range(500):
            logging.getLogger("sloth_core.test").info("line %d of a long-running master", i)
    finally:
        logs.setup()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["master.log", "master.log.1", "master.log.2", "master.log.3"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o600}  # every command is in there
    assert log_file.read_text().count("line 499 ") == 1


def test_a_daemon_writes_its_log_through_the_rotating_file(fleet: Fleet) -> None:
    started = fleet.cli("master", "-p", "0", "--join-port", "0", "--bind", "127.0.0.1", "--daemon")
    assert started.returncode == 0, started.stderr.decode()
    try:
        cmdline = Path(f"/proc/{daemon.read_pid(fleet.home / 'run' / 'master.pid')}/cmdline").read_bytes().split(b"\0")
        assert b"--log-file" in cmdline and b"--daemon" not in cmdline
        assert "listening for agent registrations" in (fleet.home / "log" / "master.log").read_text()
    finally:
        assert fleet.cli("master", "stop").returncode == 0


def test_two_daemon_starts_cannot_race(fleet: Fleet) -> None:
    argv = [*EXE, "master", "-p", "0", "--join-port", "0", "--bind", "127.0.0.1", "--daemon"]
    starts = [subprocess.Popen(argv, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in starts]  # type: ignore[union-attr]
    try:
        assert sorted(code for code, _ in results) == [0, 1, 1], results
        assert all("already running" in err for code, err in results if code)
    finally:
        assert fleet.cli("master", "stop").returncode == 0
    assert fleet.cli("master", "status").returncode == 3


def test_a_foreground_agent_says_each_thing_once(insecure_fleet: Fleet) -> None:
    port = free_port()
    insecure_fleet.master_address = f"127.0.0.1:{port}"
    agent = insecure_fleet.start_agent("a1", wait=False)  # no master yet
    wait_for(lambda: "cannot reach the master" in agent.text(), what="the agent to complain")
    insecure_fleet.start_master(port=port)
    wait_for(lambda: "registered with the master" in agent.text(), timeout=30, what="the agent to register")
    lines = [line.split(" ", 3)[3] for line in agent.text().splitlines() if line[:2] == "20"]
    assert len(lines) == len(set(lines)), lines
    assert sum("cannot reach the master" in line for line in lines) == 1


@pytest.mark.parametrize("which", ["agent", "master"])
def test_stop_returns_promptly_once_the_process_is_gone(fleet: Fleet, which: str) -> None:
    # Started in the foreground by this test, the process stays an unreaped
    # zombie after it exits: its pid still answers kill(0). The lock does not.
    master = fleet.start_master(heartbeat=HEARTBEAT_S)
    target = fleet.start_agent("a1") if which == "agent" else master
    begun = time.monotonic()
    stopped = fleet.cli(*(["agent", "stop", "--local", "a1"] if which == "agent" else ["master", "stop"]))
    took = time.monotonic() - begun
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert target.popen.poll() is not None or target.popen.wait(timeout=1) is not None
    assert took < 4.0, took  # the graceful shutdown itself, then at most a poll interval
