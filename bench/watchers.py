"""`Watch` subscribers for the scale benchmark: consoles without the screen.

    python -m bench.watchers --master ADDR --count 5 [--data-dir DIR] [--insecure]

Opens ``--count`` subscribers (each its own channel, as separate consoles
would), prints ``{"event": "ready"}`` once every one has its snapshot, records
every later event with the wall-clock time it arrived, and when stdin closes
(once every subscriber saw ``--expect-finished`` finished runs and then no
event for a second) prints one JSON document: the CPU time
this process used since "ready", and per subscriber the events it saw (a key naming
each event, the time it arrived, and for run events the master-side time the
event describes: the run's start or finish).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def event_key(event: Any) -> tuple[str, float]:
    """A stable name for an event, and the time it describes (0 if none)."""
    if event.HasField("agent"):
        a = event.agent
        return f"agent:{a.type}:{a.agent.name}:{a.agent.status}:{a.agent.running}", 0.0
    if event.HasField("run"):
        run = event.run
        kind = run.WhichOneof("kind")
        when = 0.0
        if kind == "started":
            when = run.started.started_at
        elif kind == "finished":
            when = run.finished.finished_at
        return f"run:{kind}:{run.job_id}:{run.run_id}", when
    kind = event.WhichOneof("kind")
    if kind == "heartbeats":  # a periodic batch: named by the master time it describes
        return f"heartbeats:{event.heartbeats.at:.6f}", event.heartbeats.at
    return f"other:{kind}", 0.0


QUIET_S = 1.0  # then stop once no subscriber got a (non-periodic) event for this long
DRAIN_TIMEOUT_S = 120.0


async def _subscriber(
    client: Any, ready: asyncio.Event, counter: list[int], total: int, seen: list[list[Any]]
) -> list[list[Any]]:
    stream = client.watch(include_output=False)
    first = await anext(stream)
    assert first.HasField("snapshot")
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    try:
        async for event in stream:
            key, when = event_key(event)
            seen.append([key, time.time(), when])
    except asyncio.CancelledError:
        pass
    return seen


async def _main(args: argparse.Namespace) -> int:
    from sloth_core.client import MasterClient, resolve_admin_tls

    tls = None if args.insecure else resolve_admin_tls(None, args.data_dir)
    clients = [MasterClient(args.master, tls) for _ in range(args.count)]
    ready = asyncio.Event()
    counter = [0]
    seen: list[list[list[Any]]] = [[] for _ in clients]
    tasks = [asyncio.create_task(_subscriber(c, ready, counter, args.count, s)) for c, s in zip(clients, seen, strict=True)]
    await asyncio.wait_for(ready.wait(), 60)
    sys.stdout.write(json.dumps({"event": "ready"}) + "\n")
    sys.stdout.flush()
    cpu_at_ready = time.process_time()
    await asyncio.to_thread(sys.stdin.read)  # the orchestrator closes stdin when its job is done
    deadline = time.monotonic() + DRAIN_TIMEOUT_S

    def finished(events: list[list[Any]]) -> int:
        return sum(1 for key, _, _ in events if key.startswith("run:finished:"))

    # A subscriber that is behind is still receiving the job: wait for all of it.
    while any(finished(s) < args.expect_finished for s in seen) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    def last(events: list[list[Any]]) -> float:  # periodic heartbeat batches never go quiet
        return next((recv for key, recv, _ in reversed(events) if not key.startswith("heartbeats:")), 0.0)

    while any(time.time() - last(s) < QUIET_S for s in seen):
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks)
    for client in clients:
        await client.close()
    cpu_s = time.process_time() - cpu_at_ready
    sys.stdout.write(json.dumps({"event": "done", "cpu_s": cpu_s, "subscribers": seen}) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.watchers")
    p.add_argument("--master", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--data-dir", help="the master's data dir (admin credentials)")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--expect-finished", type=int, default=0, metavar="N",
                   help="after stdin closes, wait until every subscriber saw N finished runs")
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
