"""A helper process: N consoles that Watch with output and then stop reading.

Usage: python -m tests.hostile.stalled_watchers ADDRESS BUNDLE N
Prints "ready" once every stream delivered its snapshot; then reads nothing
until a line arrives on stdin; then reads every stream to its end and prints
one JSON line: for each stream, how it ended (class name and message).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sloth_core.client import MasterClient
from sloth_core.security.credentials import load_admin_bundle


async def main(address: str, bundle: str, count: int) -> None:
    tls = load_admin_bundle(Path(bundle))
    clients = [MasterClient(address, tls) for _ in range(count)]  # one connection each, like consoles
    streams = [client.watch(include_output=True) for client in clients]
    for stream in streams:
        first = await stream.__anext__()
        assert first.HasField("snapshot")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def drain(stream: object) -> list[object]:
        received = 0
        try:
            async for event in stream:  # type: ignore[attr-defined]
                if event.HasField("run") and event.run.HasField("output"):
                    received += len(event.run.output.data)
        except Exception as exc:
            return [type(exc).__name__, str(exc), received]
        return ["ended", "", received]

    tasks = [asyncio.ensure_future(drain(s)) for s in streams]
    await asyncio.wait(tasks, timeout=60)
    results = [t.result() if t.done() else ["still open after 60 s", "", 0] for t in tasks]
    for task in tasks:
        task.cancel()
    print(json.dumps(results), flush=True)
    for client in clients:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
