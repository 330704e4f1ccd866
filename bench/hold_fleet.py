"""Hold a master and a simulated fleet up, for profiling by hand.

    python -m bench.hold_fleet --agents 1000 [--keep]

Starts a master, joins and starts N simulated agents (bench.fleet_sim),
waits until a Watch subscriber sees all of them online, then prints one JSON
line with the master's pid, the simulator pids and the cluster's home, and
keeps everything up until stdin closes (or Ctrl-C). Point py-spy, perf or
/proc at the pids meanwhile (see bench/README.md, "Profiles").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from bench._infra import Cluster, progress
from bench.fleet_sim import SimFleet, agent_name
from bench.scale import _wait_online


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hold_fleet")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--per-process", type=int, default=250)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--insecure", action="store_true")
    args = p.parse_args()
    with Cluster("hold", insecure=args.insecure, keep=args.keep) as cluster:
        cluster.start_master()
        fleet = SimFleet(cluster, args.agents, args.per_process)
        if not args.insecure:
            progress(f"joining {args.agents} agents")
            fleet.join()
        started = time.perf_counter()
        fleet.start()
        names = {agent_name(i) for i in range(args.agents)}
        online_s = asyncio.run(_wait_online(cluster, names, started, timeout=max(60.0, args.agents * 0.1)))
        assert cluster.master is not None
        print(json.dumps({
            "master": cluster.master.pid, "sims": [h.pid for h in fleet.hosts],
            "home": str(cluster.home), "address": cluster.address, "online_s": online_s,
        }), flush=True)
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
        fleet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
