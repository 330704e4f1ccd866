"""What facts cost the idle master: 1,000 simulated agents with facts on, then off.

    python -m bench.facts_cost [--agents 1000] [--windows 5] [--window-s 15]

The fleet joins once; then for each mode a master starts on the same CA with
an empty registry, the fleet starts (``bench.fleet_sim``, with or without
``--no-facts``), and once every agent is online and the registrations have
settled, the master's CPU (% of one core) and RSS are sampled over
``--windows`` windows of ``--window-s`` seconds. Target (issue 14): facts add
at most 1 % of a core and 10 MB of RSS at 1,000 agents. Prints one JSON
document; the machine is shared, so read the spread, not only the mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench._infra import Cluster, cpu_meter, progress, rss_mb
from bench.fleet_sim import SimFleet
from bench.scale import _cpu, _reset_registry, _wait_online

CPU_TARGET_PCT = 1.0
RSS_TARGET_MB = 10.0
SETTLE_S = 20.0  # registrations and the first facts beats are over


def _mode(cluster: Cluster, *args: Any) -> dict[str, Any]:
    """One mode, tried again once when a simulated agent could not start (a port taken meanwhile)."""
    try:
        return _one_mode(cluster, *args)
    except RuntimeError as exc:
        progress(f"facts: retrying once: {exc}")
        return _one_mode(cluster, *args)


def _one_mode(cluster: Cluster, n: int, per_process: int, facts: bool, windows: int, window_s: float) -> dict[str, Any]:
    _reset_registry(cluster)
    cluster.start_master()
    fleet = SimFleet(cluster, n, per_process, extra=() if facts else ("--no-facts",))
    try:
        started = time.perf_counter()
        fleet.start()
        names = {f"sim-{i:04d}" for i in range(n)}
        online_s = asyncio.run(_wait_online(cluster, names, started, timeout=max(120.0, n * 0.2)))
        try:
            fleet.wait_started(timeout=60)
            lost = ""
        except RuntimeError as exc:
            # On main, an agent that registered may then lose its probed port to
            # another's outgoing connection and stop (gone once agents dial out):
            # a handful of 1,000, so measure the rest and say so.
            lost = str(exc)
            progress(f"facts: {lost}")
        progress(f"facts {'on' if facts else 'off'}: {n} online in {online_s:.1f} s; settling {SETTLE_S:.0f} s")
        time.sleep(SETTLE_S)
        assert cluster.master is not None
        pid = cluster.master.pid
        cpu: list[float] = []
        rss: list[float] = []
        sim_before = sum(_cpu(h.pid) for h in fleet.hosts)
        begun_all = time.perf_counter()
        for i in range(windows):
            with cpu_meter(pid) as used:
                begun = time.perf_counter()
                time.sleep(window_s)
                cpu.append(100 * used() / (time.perf_counter() - begun))
            rss.append(rss_mb(pid))
            progress(f"facts {'on' if facts else 'off'}: window {i + 1}: {cpu[-1]:.2f} % CPU, {rss[-1]:.1f} MB")
        sim_pct = 100 * (sum(_cpu(h.pid) for h in fleet.hosts) - sim_before) / (time.perf_counter() - begun_all)
        return {"facts": facts, "online_s": round(online_s, 1), "cpu_pct": [round(c, 2) for c in cpu],
                "rss_mb": [round(r, 1) for r in rss], "simulator_cpu_pct": round(sim_pct, 1),
                "online_at_end": _online(cluster), "start_errors": lost}
    finally:
        fleet.stop()
        cluster.stop_master()


def _online(cluster: Cluster) -> int:
    listed = cluster.cli("agent", "list", "--json")
    try:
        return sum(1 for a in json.loads(listed.stdout) if a["status"] == "online")
    except (ValueError, KeyError, TypeError):
        return -1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.facts_cost", description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--per-process", type=int, default=250)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window-s", type=float, default=15.0)
    p.add_argument("--on-first", action="store_true", help="measure facts on first (order bias on a busy machine)")
    args = p.parse_args(argv)
    with Cluster("facts") as cluster:
        cluster.start_master()
        progress(f"facts: {args.agents} simulated agents join")
        SimFleet(cluster, args.agents, args.per_process).join()
        cluster.stop_master()
        modes = {}
        for facts in (True, False) if args.on_first else (False, True):
            modes[facts] = _mode(cluster, args.agents, args.per_process, facts, args.windows, args.window_s)
        off, on = modes[False], modes[True]
    added_cpu = statistics.mean(on["cpu_pct"]) - statistics.mean(off["cpu_pct"])
    added_rss = max(on["rss_mb"]) - max(off["rss_mb"])
    print(json.dumps({
        "agents": args.agents, "off": off, "on": on,
        "added_cpu_pct_of_a_core": round(added_cpu, 2), "cpu_target": CPU_TARGET_PCT,
        "added_rss_mb": round(added_rss, 1), "rss_target_mb": RSS_TARGET_MB,
        "verdict": "ok" if added_cpu <= CPU_TARGET_PCT and added_rss <= RSS_TARGET_MB else "over target",
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
