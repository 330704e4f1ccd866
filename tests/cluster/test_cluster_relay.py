"""Cancel and follow from any master: a run driven by A, operated from B (relayed over mTLS)."""

from __future__ import annotations

import hashlib
import json
import os

from sloth_core.harness import wait_for
from tests.cluster.conftest import Cluster


def test_follow_and_cancel_from_the_other_master(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    a.start_agent("w1")
    a.spawn(["agent", "run", "w1", "echo $((20+1)); sleep 1; echo $((40+2)); sleep 60"], "run-on-a")

    def running() -> str | None:
        listed = b.cli("runs", "list", "--json")
        runs = [r for r in json.loads(listed.stdout) if r["status"] == "running"] if listed.returncode == 0 else []
        return runs[0]["run_id"] if runs else None

    run_id = wait_for(running, 15, "the run on A to show on B")
    follower = b.spawn(["runs", "show", run_id, "--follow"], "follow-on-b")
    wait_for(lambda: b"\n42\n" in follower.log.read_bytes(), 15, "B's follower to relay A's live output")

    cancelled = b.cli("runs", "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr.decode()
    assert cancelled.stdout.decode() == f"cancelling 1 run(s): {run_id[:10]}\n"
    wait_for(lambda: not follower.alive(), 15, "the follower to end with the run")
    shown = b.cli("runs", "show", run_id, "--json")
    assert json.loads(shown.stdout)["status"] == "cancelled"
    assert b"\n21\n42\n" in follower.log.read_bytes(), "A's output, live, through B"


def test_stop_and_delete_on_one_master_take_effect_on_the_other(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    agent = b.start_agent("w1")
    a.wait_status("w1", "online")  # A sees B's agent (mirrored from the store)

    stopped = a.cli("agent", "stop", "w1")
    assert stopped.returncode == 0, stopped.stderr.decode()
    wait_for(lambda: not agent.alive(), 15, "the agent to stop")
    b.wait_status("w1", "stopped")

    deleted = a.cli("agent", "delete", "w1", "--yes")
    assert deleted.returncode == 0, deleted.stderr.decode()
    wait_for(lambda: "w1" not in b.agents(), 5, "B to forget the agent A deleted")
    # Nothing brings it back: its certificate was revoked on A, and B refuses it at once.
    again = b.spawn(["agent", "start", "--name", "w1", "--master", b.master_address], "agent-w1-again")
    wait_for(lambda: b"revoked" in again.log.read_bytes(), 15, "B to refuse the deleted agent's certificate")
    assert b"registered with the master" not in again.log.read_bytes()
    assert "w1" not in b.agents() and "w1" not in a.agents()


def test_a_run_through_one_master_on_an_agent_connected_to_the_other(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    b.start_agent("w2")
    a.wait_status("w2", "online")
    ran = a.cli("agent", "run", "w2", "echo through b; echo err >&2; exit 3")
    assert ran.returncode == 3, ran.stderr.decode()
    assert ran.stdout == b"through b\n"
    assert b"err\n" in ran.stderr

    # Cancel through A: B hangs up, the agent kills the run.
    long = a.spawn(["agent", "run", "w2", "sleep 60"], "long-through-b")

    def running() -> str | None:
        listed = a.cli("runs", "list", "--json")
        runs = [r for r in json.loads(listed.stdout) if r["status"] == "running"] if listed.returncode == 0 else []
        return runs[0]["run_id"] if runs else None

    run_id = wait_for(running, 15, "the relayed run to be running")
    cancelled = b.cli("runs", "cancel", run_id)  # from B, for a run A drives on B's agent
    assert cancelled.returncode == 0, cancelled.stderr.decode()
    wait_for(lambda: not long.alive(), 15, "the run to end")
    assert json.loads(a.cli("runs", "show", run_id, "--json").stdout)["status"] == "cancelled"


def test_stdin_through_one_master_reaches_an_agent_connected_to_the_other(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    b.start_agent("w2")
    b.start_agent("w3")
    a.wait_status("w2", "online")
    a.wait_status("w3", "online")
    payload = os.urandom(8 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    # caller -> A -> B -> agent, each hop with its own flow control.
    ran = a.cli("agent", "run", "w2", "sha256sum", input=payload)
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == f"{digest}  -\n".encode()
    fanned = a.cli("agent", "run", "--stdin", "w2,w3", "wc -c", input=payload)
    assert fanned.returncode == 0, fanned.stderr.decode()
    assert sorted(fanned.stdout.decode().splitlines()) == [f"w2 | {len(payload)}", f"w3 | {len(payload)}"]
