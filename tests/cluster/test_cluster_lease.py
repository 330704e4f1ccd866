"""A master dies mid-run: a survivor marks its runs lost once its lease expires."""

from __future__ import annotations

import json
import time

from sloth_core.harness import wait_for
from sloth_core.master.lease import LEASE_S, REFRESH_S
from tests.cluster.conftest import Cluster


def _runs(fleet, *extra: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    listed = fleet.cli("runs", "list", "--json", *extra)
    assert listed.returncode == 0, listed.stderr.decode()
    return {r["run_id"]: r for r in json.loads(listed.stdout)}


def test_sigkill_a_master_mid_run_and_a_survivor_marks_its_run_lost_within_15s(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    agent = a.start_agent("w1", "--master", f"{a.master_address},{b.master_address}")
    done = a.cli("agent", "run", "w1", "echo before", "--json")
    assert done.returncode == 0, done.stderr.decode()
    before = json.loads(done.stdout)["run_id"]
    attached = a.spawn(["agent", "run", "w1", "sleep 120"], "attached-run")
    running = wait_for(
        lambda: [r for r, info in _runs(b).items() if info["status"] == "running"], 15, "the run to show on B",
    )

    a.procs[0].kill()  # SIGKILL the master A
    killed_at = time.monotonic()
    wait_for(lambda: _runs(b)[running[0]]["status"] == "lost", 15, "B to mark A's run lost")
    took = time.monotonic() - killed_at
    assert took <= 15, took
    assert took >= LEASE_S - REFRESH_S, "not before A's lease could have expired"
    # The client attached to A got an answer, not a hang.
    wait_for(lambda: not attached.alive(), 15, "the attached client to end")
    assert attached.popen.returncode != 0
    # History is intact.
    assert _runs(b)[before]["status"] == "succeeded"
    # The agent failed over to B within 12 s of A's death, and a new run works.
    wait_for(lambda: f"registered with the master at {b.master_address}".encode() in agent.log.read_bytes(),
             max(1.0, 12 - (time.monotonic() - killed_at)), "the agent to register with B")
    print(f"failover: the agent registered with B {time.monotonic() - killed_at:.1f} s after SIGKILL of A "
          f"(target 12 s); A's run lost after {took:.1f} s (target 15 s)")
    ran = b.cli("agent", "run", "w1", "echo after failover")
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == b"after failover\n"


def test_a_master_that_restarts_does_not_mark_the_runs_of_the_others_lost(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    b.start_agent("w2")
    b.spawn(["agent", "run", "w2", "sleep 120"], "run-on-b")
    running = wait_for(
        lambda: [r for r, info in _runs(a).items() if info["status"] == "running"], 15, "the run to show on A",
    )
    a.procs[0].stop()
    a.start_master("--store", cluster.url)
    assert _runs(a)[running[0]]["status"] == "running"
