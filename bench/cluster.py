"""Two masters on one PostgreSQL database, simulated agents spread over both.

    python -m bench.cluster --agents 1000        # figures beside their targets (issue 13)

Real processes: master A makes the cluster, master B joins it
(`master join-cluster`), both with `--store postgresql://…` on a database of
their own (created on the server at $SLOTH_TEST_PG, 127.0.0.1:5432 by
default, and dropped at the end). Half the simulated agents are given
`A,B`, the other half `B,A` (each connects to its first master). Figures:

- registered: from starting the agents until A's Watch has seen every one online (≤ 15 s);
- `agent run --all true` through A, half of it relayed to B's agents (≤ 3 s);
- Watch lag: a run through A, seen finished by a watcher on B, minus when A's watcher saw it (≤ 500 ms);
- failover: SIGKILL A, until B holds every agent (B's lease row counts them; ≤ 12 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from bench._infra import Cluster, progress, reap_all
from bench.fleet_sim import SimFleet, agent_name

SERVER = os.environ.get("SLOTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
TARGETS = {"registered": 15.0, "run_all": 3.0, "watch_lag": 0.5, "failover": 12.0}


class _Shard:
    """What SimFleet needs of a cluster, for one shard of the fleet (its masters, its first name)."""

    def __init__(self, base: Cluster, masters: str, first: int) -> None:
        self._base = base
        self.address = masters
        self.home = base.home
        self.env = base.env
        self.flags = base.flags
        self.first = first

    def log(self, name: str) -> Path:
        return self._base.log(f"{name}-{self.first}")


class _ShardFleet(SimFleet):
    def __init__(self, shard: _Shard, count: int) -> None:
        super().__init__(shard, count)
        self._first = shard.first

    def _slices(self) -> list[tuple[int, int]]:
        return [(self._first + first, count) for first, count in super()._slices()]


def _database() -> tuple[str, Any]:
    import psycopg

    name = f"bench_{secrets.token_hex(5)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{SERVER}/{name}", drop


async def _watch_online(cluster: Cluster, names: set[str], started: float, timeout: float) -> float:
    from bench.scale import _wait_online

    return await _wait_online(cluster, names, started, timeout)


async def _watch_lag(a: Cluster, b: Cluster, agent: str, runs: int) -> list[float]:
    """Per run through A: when B's watcher saw it finished minus when A's watcher did."""
    from sloth_core.client import MasterClient

    lags: list[float] = []
    seen: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    ready = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def watch(key: str, cluster: Cluster, tls: Any) -> None:
        async with MasterClient(cluster.address, tls) as client:
            async for event in client.watch():
                if event.HasField("snapshot"):
                    ready[key].set()
                elif event.HasField("run") and event.run.HasField("finished"):
                    seen[key][event.run.run_id] = time.perf_counter()

    tls = a.admin_tls()
    tasks = [asyncio.create_task(watch("a", a, tls)), asyncio.create_task(watch("b", b, tls))]
    try:
        await asyncio.wait_for(asyncio.gather(ready["a"].wait(), ready["b"].wait()), 15)
        async with MasterClient(a.address, tls) as client:
            for _ in range(runs):
                outcome = None
                async for event in client.run(command="true", names=[agent]):
                    if event.HasField("finished"):
                        outcome = event.run_id
                assert outcome is not None
                for _ in range(200):
                    if outcome in seen["a"] and outcome in seen["b"]:
                        break
                    await asyncio.sleep(0.01)
                if outcome in seen["a"] and outcome in seen["b"]:
                    lags.append(max(0.0, seen["b"][outcome] - seen["a"][outcome]))
    finally:
        for task in tasks:
            task.cancel()
    return lags


def _held_by(url: str, address: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT agents FROM masters WHERE address = %s", (address,)).fetchone()
    return int(row[0]) if row else 0


def run(agents: int) -> dict[str, float]:
    from sloth_core.harness import wait_for

    url, drop = _database()
    keep = bool(os.environ.get("BENCH_KEEP"))
    a, b = Cluster("cluster-a", keep=keep), Cluster("cluster-b", keep=keep)
    fleets: list[SimFleet] = []
    figures: dict[str, float] = {}
    try:
        progress("cluster: two masters on PostgreSQL")
        a.start_master("--store", url)
        token = a.cli("master", "token", "create", "--master").stdout.decode().strip()
        joined = b.cli("master", "join-cluster", "--from", a.address, "--token", token, "--store", url, "--name", "b")
        assert joined.returncode == 0, joined.stderr.decode()
        b.start_master("--store", url)
        half = agents // 2
        progress(f"cluster: {agents} simulated agents join (through A)")
        _ShardFleet(_Shard(a, a.address, 0), agents).join()
        fleets = [
            _ShardFleet(_Shard(a, f"{a.address},{b.address}", 0), half),
            _ShardFleet(_Shard(a, f"{a.address},{b.address}" if os.environ.get("BENCH_ALL_ON_A") else f"{b.address},{a.address}", half), agents - half),
        ]
        names = {agent_name(i) for i in range(agents)}
        started = time.perf_counter()
        for fleet in fleets:
            fleet.start()
        figures["registered"] = asyncio.run(_watch_online(a, names, started, 20 + agents / 20))

        progress("cluster: agent run --all true through A")
        samples = []
        for _ in range(3):
            timed = a.cli("agent", "run", "--all", "true", stdout=open(os.devnull, "wb"))
            assert timed.returncode == 0, timed.stderr.decode()[-500:]
            samples.append(timed.elapsed_s)
        figures["run_all"] = statistics.median(samples)

        progress("cluster: Watch lag from the other master")
        lags = asyncio.run(_watch_lag(a, b, agent_name(0), 10))
        figures["watch_lag"] = statistics.median(lags) if lags else float("nan")

        progress("cluster: SIGKILL A; every agent to B")
        assert a.master is not None
        killed = time.perf_counter()
        a.master.send_signal(signal.SIGKILL)
        a.master.wait()
        a.master = None
        wait_for(lambda: _held_by(url, b.address) >= agents, 120, f"B to hold all {agents} agents", interval=0.2)
        figures["failover"] = time.perf_counter() - killed
    finally:
        for fleet in fleets:
            fleet.stop()
        b.close()
        a.close()
        reap_all()
        drop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    args = parser.parse_args()
    figures = run(args.agents)
    print(f"{'figure':<44}{'measured':>10}{'target':>10}  result")
    titles = {
        "registered": f"{args.agents} agents over two masters registered",
        "run_all": "agent run --all true through A (median of 3)",
        "watch_lag": "Watch lag from the other master (median)",
        "failover": "SIGKILL A -> all agents held by B",
    }
    for key, title in titles.items():
        value, target = figures.get(key, float("nan")), TARGETS[key]
        print(f"{title:<44}{value:>9.3f}s{target:>9.1f}s  {'pass' if value <= target else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
