"""Hostile: a name is a certificate (issue 10, item 3).

Someone holding a join token could take the name of a stopped or offline
agent, revoking the real one's certificate and receiving its commands. Now
the name stays bound to its certificate until an operator frees it (`agent
delete`) or mints a token for exactly that (`token create --for --replace`).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from sloth_core.security import layout
from tests.fleet import Fleet, Proc
from tests.hostile.trust_support import token

pytestmark = pytest.mark.timeout(120)


def refused_join(remote: Fleet, name: str, *extra: str) -> tuple[str, Proc]:
    proc = remote.start_agent(name, *extra, wait=False)
    try:
        code = proc.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the impostor kept running:\n{proc.text()}") from None
    text = proc.text()
    assert code == 1 and "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert not (layout.pki_dir(remote.home / "agents" / name) / layout.AGENT_CERT).exists()
    return errors[0], proc


def bound(name: str) -> str:
    return (
        f"error: agent name {name!r} belongs to an existing agent's certificate; to give it to this machine, "
        f"run `sloth-runner agent delete {name}` first, or join with a token from "
        f"`sloth-runner master token create --for {name} --replace`"
    )


def test_a_stopped_or_offline_agent_keeps_its_name(fleet: Fleet, tmp_path: Path) -> None:
    master = fleet.start_master()
    beta = fleet.start_agent("beta")
    remote = Fleet(home=tmp_path / "impostor")
    remote.home.mkdir()
    remote.master_address = fleet.master_address
    try:
        plain = token(fleet)
        # Stopped (it said goodbye).
        beta.stop()
        fleet.wait_status("beta", "stopped")
        assert refused_join(remote, "beta", "--token", plain)[0] == bound("beta")

        # Restarted with its own stored certificate, on another port: it keeps working.
        beta = fleet.start_agent("beta")
        result = fleet.cli("agent", "run", "beta", "echo still mine")
        assert result.returncode == 0 and result.stdout.startswith(b"still mine\n"), result.stderr

        # Offline (killed): still bound.
        beta.kill(signal.SIGKILL)
        fleet.wait_status("beta", "offline")
        assert refused_join(remote, "beta", "--token", plain)[0] == bound("beta")
        assert "refused join of 'beta'" in master.text()

        # A token for one name admits no other; a replacing token is single-use.
        replacing = token(fleet, "create", "--for", "beta", "--replace")
        assert refused_join(remote, "gamma", "--token", replacing)[0] == "error: this join token is for agent 'beta' only"
        usage = fleet.cli("master", "token", "create", "--replace")
        assert usage.returncode == 2 and b"--replace needs --for NAME" in usage.stderr

        # The real beta comes back and works, and its commands stay its own.
        beta = fleet.start_agent("beta")
        assert fleet.cli("agent", "run", "beta", "true").returncode == 0

        # The operator's explicit act: the new machine takes the name over...
        beta.stop()
        fleet.wait_status("beta", "stopped")
        newcomer = remote.start_agent("beta", "--token", replacing)
        result = fleet.cli("agent", "run", "beta", "echo $SLOTH_RUNNER_HOME")
        assert result.returncode == 0, result.stderr
        assert fleet.agents()["beta"]["address"] == remote_address(fleet, newcomer)
        # ...the old certificate is revoked, and the token is spent.
        old = fleet.start_agent("beta", wait=False)
        assert old.popen.wait(timeout=30) == 1
        assert "the certificate of agent:beta was revoked" in old.text()
        newcomer.stop()
        again, _ = refused_join(Fleet(home=_fresh(tmp_path / "third"), master_address=fleet.master_address), "beta", "--token", replacing)
        assert again == "error: join token was already used"

        # `agent delete` frees the name for anyone with a token.
        assert fleet.cli("agent", "delete", "beta", "--yes").returncode == 0
        third = Fleet(home=_fresh(tmp_path / "fourth"), master_address=fleet.master_address)
        try:
            third.start_agent("beta", "--token", plain)
            assert fleet.cli("agent", "run", "beta", "true").returncode == 0
        finally:
            third.close()
    finally:
        remote.close()


def _fresh(path: Path) -> Path:
    path.mkdir()
    return path


def remote_address(fleet: Fleet, proc: Proc) -> str:
    for line in proc.text().splitlines():
        if "registered with the master" in line:
            return line.rsplit("(", 1)[1].rstrip(")")
    raise AssertionError(proc.text())
