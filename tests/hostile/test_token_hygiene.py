"""Issue 10 item 6: the join token stays out of /proc, and commands never see the agent's settings."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fleet import EXE, Fleet, children, wait_for

pytestmark = pytest.mark.timeout(90)


def token_of(fleet: Fleet) -> str:
    result = fleet.cli("master", "token")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item)


@pytest.mark.parametrize("via", ["flag", "flag=", "environment"])
def test_daemon_token_is_not_in_proc(fleet: Fleet, tmp_path: Path, via: str) -> None:
    fleet.start_master()
    token = token_of(fleet)
    secret = token.split(".")[-1]
    # A home of its own: no local master whose token it could find by itself.
    env = {**fleet.env, "SLOTH_RUNNER_HOME": str(tmp_path / "agent-home")}
    if via == "environment":
        env["SLOTH_RUNNER_TOKEN"] = token
    given = {"flag": ["--token", token], "flag=": [f"--token={token}"], "environment": []}[via]
    result = subprocess.run(
        [*EXE, "agent", "start", "--name", "d1", "--master", fleet.master_address, "--port", "0",
         "--bind-address", "127.0.0.1", "--data-dir", str(tmp_path / "d1"), *given, "--daemon"],
        env=env, capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    pid = int((tmp_path / "agent-home" / "run" / "agent-d1.pid").read_text())
    try:
        # It joined with the token it was given...
        wait_for(lambda: (tmp_path / "d1").exists() and "d1" in fleet.agents(), what="the daemon to register")
        # ...which is in none of its (or its helper's) /proc entries.
        for proc in [pid, *children(pid)]:
            cmdline = Path(f"/proc/{proc}/cmdline").read_bytes()
            assert secret.encode() not in cmdline, f"token on the command line of pid {proc}: {cmdline!r}"
            assert not any(secret in value for value in environ(proc).values()), f"token in the environment of {proc}"
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3],
                 what="the daemon to stop")


def test_commands_never_see_sloth_runner_settings(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()
    token = token_of(fleet)
    env = {**fleet.env, "SLOTH_RUNNER_TOKEN": token, "SLOTH_RUNNER_CREDENTIALS": "/secret/bundle"}
    fleet.start_agent("a1", "--data-dir", str(tmp_path / "a1"), env=env)
    marker, go = tmp_path / "pid", tmp_path / "go"
    cli = subprocess.Popen(
        [*EXE, "agent", "run", "a1", f"echo $$ > {marker}; env; until [ -e {go} ]; do sleep 0.02; done",
         *fleet.client_flags()],
        env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), what="the command to start")
        seen = environ(int(marker.read_text()))
    finally:
        go.touch()
        out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, err.decode()
    assert seen.get("SLOTH_AGENT") == "a1" and seen.get("SLOTH_RUN_ID")  # the environ of the right process
    leaked = sorted(k for k in seen if k.startswith("SLOTH_RUNNER_"))
    assert leaked == [], f"the command sees the agent's settings: {leaked}"
    assert b"SLOTH_AGENT=a1" in out and b"SLOTH_RUNNER_" not in out and token.encode() not in out
