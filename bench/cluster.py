"""Two masters on one PostgreSQL database, simulated agents spread over both (issue 13).

    python -m bench --only cluster               # in the main table, beside their targets
    python -m bench.cluster --agents 1000        # standalone

Real processes: master A makes the cluster, master B joins it
(`master join-cluster`), both with `--store postgresql://…` on a database of
their own (created on the server at $SLOTH_TEST_PG, 127.0.0.1:5432 by
default, and dropped at the end). Half the simulated agents are given
`A,B`, the other half `B,A` (each connects to its first master). Figures:

- registered: from starting the agents until A's Watch has seen every one online (≤ 15 s);
- `agent run --all true` through A, half of it relayed to B's agents (≤ 3 s);
- Watch lag: a run through A, seen finished by a watcher on B, minus when A's watcher saw it (≤ 500 ms);
- failover: SIGKILL A, until B holds every agent (B's lease row counts them; ≤ 12 s).

Targets apply at 1,000 agents (the full run); `--quick` runs 100.
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

from bench._infra import Cluster, Figure, Results, progress, reap_all
from bench.fleet_sim import SimFleet, agent_name

SERVER = os.environ.get("SLOTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
FLEET = 1000  # the size the targets are set for
TARGETS = {"registered": 15.0, "run_all": 3.0, "watch_lag": 500.0, "failover": 12.0}  # watch_lag in ms
RUN_ALL_RUNS = 3
WATCH_RUNS = 10


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


def measure(agents: int, *, keep: bool = False) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Samples per figure, and what went wrong with any of them."""
    from sloth_core.harness import wait_for

    url, drop = _database()
    keep = keep or bool(os.environ.get("BENCH_KEEP"))
    a, b = Cluster("cluster-a", keep=keep), Cluster("cluster-b", keep=keep)
    fleets: list[SimFleet] = []
    figures: dict[str, list[float]] = {}
    failures: dict[str, str] = {}
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
        figures["registered"] = [asyncio.run(_watch_online(a, names, started, 20 + agents / 20))]

        progress("cluster: agent run --all true through A")
        figures["run_all"] = []
        summary = f"{agents} succeeded, 0 failed, 0 rejected".encode()
        for _ in range(RUN_ALL_RUNS):
            with open(os.devnull, "wb") as devnull:
                timed = a.cli("agent", "run", "--all", "true", stdout=devnull)
            figures["run_all"].append(timed.elapsed_s)
            if timed.returncode != 0 or summary not in timed.stderr:
                tail = timed.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                failures["run_all"] = f"exit {timed.returncode}: {tail[0][:200]}"

        progress("cluster: Watch lag from the other master")
        figures["watch_lag"] = [lag * 1000 for lag in asyncio.run(_watch_lag(a, b, agent_name(0), WATCH_RUNS))]
        if len(figures["watch_lag"]) < WATCH_RUNS:
            failures["watch_lag"] = f"B's watcher saw {len(figures['watch_lag'])} of {WATCH_RUNS} runs finish within 2 s"

        progress("cluster: SIGKILL A; every agent to B")
        assert a.master is not None
        killed = time.perf_counter()
        a.master.send_signal(signal.SIGKILL)
        a.master.wait()
        a.master = None
        wait_for(lambda: _held_by(url, b.address) >= agents, 120, f"B to hold all {agents} agents", interval=0.2)
        figures["failover"] = [time.perf_counter() - killed]
    finally:
        for fleet in fleets:
            fleet.stop()
        b.close()
        a.close()
        reap_all()
        drop()
    return figures, failures


def _titles(agents: int) -> dict[str, tuple[str, str, str]]:
    """Figure key -> (title, unit, how it is measured)."""
    return {
        "registered": (f"{agents:,} agents over two masters (PostgreSQL) registered and online", "s",
                       "python -m bench.fleet_sim x N, half given A,B and half B,A; until A's Watch shows all online"),
        "run_all": (f"CLI `agent run --all true` through A, {agents:,} agents on two masters", "s",
                    f"sloth-runner agent run --all true, whole process, {RUN_ALL_RUNS} runs; half relayed via B"),
        "watch_lag": ("Watch lag from the other master", "ms",
                      f"a run through A: B's watcher sees it finished minus A's watcher, {WATCH_RUNS} runs"),
        "failover": (f"failover: SIGKILL A until B holds all {agents:,} agents", "s",
                     "kill -9 of master A; until B's lease row counts every agent (2 s renewal granularity)"),
    }


def run(profile: Any, results: Results) -> None:
    """The runner's entry: the figures above, in the main table beside their targets (at 1,000 agents)."""
    agents = profile.cluster_agents
    titles = _titles(agents)
    reason = postgres_missing()
    if reason:
        for key, (title, unit, _) in titles.items():
            results.missing(f"cluster_{key}", title, unit, reason, TARGETS[key] if agents == FLEET else None)
        return
    figures, failures = measure(agents, keep=profile.keep)
    for key, (title, unit, how) in titles.items():
        note = "" if agents == FLEET else f"targets apply at {FLEET:,} agents"
        if key not in figures:
            results.missing(f"cluster_{key}", title, unit, failures.get(key, "not measured"),
                            TARGETS[key] if agents == FLEET else None)
            continue
        results.add(Figure(
            f"cluster_{key}", title, unit, figures[key], TARGETS[key] if agents == FLEET else None,
            command=how, note=note, failure=failures.get(key, ""),
        ))


def postgres_missing() -> str:
    """Why the PostgreSQL benchmarks cannot run here ("" when they can)."""
    try:
        import psycopg

        with psycopg.connect(f"{SERVER}/test", connect_timeout=3):
            return ""
    except Exception as exc:
        text = str(exc).strip()
        return f"no PostgreSQL at {SERVER} ({text.splitlines()[0] if text else type(exc).__name__}); set $SLOTH_TEST_PG"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=FLEET)
    args = parser.parse_args()
    figures, failures = measure(args.agents)
    print(f"{'figure':<72}{'median':>12}{'target':>12}  result")
    for key, (title, unit, _) in _titles(args.agents).items():
        samples = figures.get(key) or [float("nan")]
        value, target = statistics.median(samples), TARGETS[key]
        verdict = f"FAIL: {failures[key]}" if key in failures else "pass" if value <= target else "FAIL"
        print(f"{title:<72}{value:>9.3f} {unit:<2}{target:>9.1f} {unit:<2}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
