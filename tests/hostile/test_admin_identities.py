"""Hostile: an admin is a person (issue 10, item 4).

Every exported bundle is its own identity admin:NAME, named in history,
listed, and revocable alone; revoking it ends its open streams (Watch,
`runs show --follow`, a running `agent run`) within seconds, not only its
future calls.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from sloth_core.client import MasterClient
from sloth_core.errors import CertificateRevokedError
from sloth_core.security.credentials import load_admin_bundle
from tests.fleet import EXE, Fleet, wait_for
from tests.hostile.trust_support import one_error

pytestmark = pytest.mark.timeout(120)

REVOKED = "error: the certificate of admin:ops was revoked; ask for a new credentials bundle (`sloth-runner master credentials`)"


def test_every_bundle_is_a_person_and_revoking_one_ends_its_streams(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    bundle = tmp_path / "ops.json"

    exported = fleet.cli("master", "credentials", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.decode().startswith(f"admin credentials for admin:ops written to {bundle}")
    assert json.loads(bundle.read_text())["identity"] == "admin:ops"
    again = fleet.cli("master", "credentials", "--out", str(bundle))
    assert one_error(again, 1).startswith("error: admin:ops already exists; choose another --name")
    assert one_error(fleet.cli("master", "credentials", "--out", str(tmp_path / "x.json"), "--name", "local"), 2)
    named = fleet.cli("master", "credentials", "--out", str(tmp_path / "b.json"), "--name", "bob")
    assert named.returncode == 0 and b"admin:bob" in named.stdout

    ops = {**fleet.env, "SLOTH_RUNNER_CREDENTIALS": str(bundle)}
    assert fleet.cli("agent", "run", "a1", "echo by ops", env=ops).returncode == 0
    runs = json.loads(fleet.cli("runs", "list", "--json").stdout)
    assert [(r["command"], r["requested_by"]) for r in runs] == [("echo by ops", "admin:ops")]

    listed = fleet.cli("master", "credentials", "list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.decode().splitlines()[1:]}
    assert rows == {"admin:local": "active", "admin:ops": "active", "admin:bob": "active"}

    async def scenario() -> tuple[float, dict[str, tuple[int, str]], BaseException | None]:
        # Three open streams of admin:ops: a running `agent run`, a follower, a Watch.
        runner = await asyncio.create_subprocess_exec(
            *EXE, "agent", "run", "a1", "sleep 300", env=ops, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )

        def running_id() -> str:
            runs = json.loads(fleet.cli("runs", "list", "--json", "--status", "running").stdout)
            return str(runs[0]["run_id"]) if runs else ""

        run_id = str(await asyncio.to_thread(wait_for, running_id, 30.0, "the run to start"))
        follower = await asyncio.create_subprocess_exec(
            *EXE, "runs", "show", "--follow", run_id, env=ops,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        watch_error: BaseException | None = None
        snapshot = asyncio.Event()

        async def watch() -> None:
            nonlocal watch_error
            async with MasterClient(fleet.master_address, load_admin_bundle(bundle)) as client:
                try:
                    async for event in client.watch():
                        if event.HasField("snapshot"):
                            snapshot.set()
                except BaseException as exc:  # what the watcher is told
                    watch_error = exc

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(snapshot.wait(), 20)
        # The follower has its run from the master once its header's rule is out.
        while True:
            line = await asyncio.wait_for(follower.stderr.readline(), 20)  # type: ignore[union-attr]
            assert line, "the follower ended before it had its run"
            if "─" in line.decode():
                break

        revoked_at = time.monotonic()
        result = await asyncio.to_thread(fleet.cli, "master", "credentials", "revoke", "ops")
        assert result.returncode == 0, result.stderr
        outcomes: dict[str, tuple[int, str]] = {}
        for name, proc in (("agent run", runner), ("follow", follower)):
            _, err = await asyncio.wait_for(proc.communicate(), 10)
            outcomes[name] = (proc.returncode or 0, err.decode())
        await asyncio.wait_for(watcher, 10)
        return time.monotonic() - revoked_at, outcomes, watch_error

    took, outcomes, watch_error = asyncio.run(scenario())
    assert took < 5.0, f"the revoked identity's streams lived {took:.1f} s on"
    for name, (code, err) in outcomes.items():
        assert code == 1, (name, code, err)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert lines == [REVOKED], (name, err)
        assert "Traceback" not in err
    assert isinstance(watch_error, CertificateRevokedError), repr(watch_error)

    # Its run was cancelled with it; everyone else carries on.
    runs = {r["command"]: r for r in json.loads(fleet.cli("runs", "list", "--json").stdout)}
    wait_for(lambda: json.loads(fleet.cli("runs", "list", "--json", "--status", "running").stdout) == [],
             what="the revoked operator's run to end")
    runs = {r["command"]: r for r in json.loads(fleet.cli("runs", "list", "--json").stdout)}
    assert runs["sleep 300"]["status"] == "cancelled" and runs["sleep 300"]["requested_by"] == "admin:ops"
    assert one_error(fleet.cli("agent", "list", env=ops), 1) == REVOKED
    assert fleet.cli("agent", "run", "a1", "true", env={**fleet.env, "SLOTH_RUNNER_CREDENTIALS": str(tmp_path / "b.json")}).returncode == 0
    assert fleet.cli("agent", "list").returncode == 0

    listed = fleet.cli("master", "credentials", "list").stdout.decode()
    rows = {line.split()[0]: line.split()[1] for line in listed.splitlines()[1:]}
    assert rows == {"admin:local": "active", "admin:ops": "revoked", "admin:bob": "active"}
    assert one_error(fleet.cli("master", "credentials", "revoke", "ops"), 255) == "error: admin:ops was already revoked"
    assert one_error(fleet.cli("master", "credentials", "revoke", "nobody"), 255).startswith("error: no admin identity 'nobody'")
    assert one_error(fleet.cli("master", "credentials", "revoke", "local"), 2).startswith(
        "error: admin:local is the master's own identity; it cannot be revoked"
    )
