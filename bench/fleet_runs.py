"""Runs across a fleet of real agent processes (the fleet-runs issue's figures).

- `sloth-runner agent run --all 'echo hi'` across N local agent processes
  (50 in the full run), whole CLI process;
- 13.5 MB of output (`head -c 10000000 /dev/zero | base64`) through the
  master to the CLI, whole process, with `--raw` and in normal mode, stdout
  to /dev/null (one extra run checks the byte count through a pipe);
- sustained live-stream throughput: an in-process client reads the output of
  `head -c SIZE /dev/zero` (agent → master → client) and counts every byte.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

from bench._infra import Cluster, Figure, Results, cli_argv, command_line, progress

FANOUT_AGENTS = 50
FANOUT_TARGET_MS = 400.0
OUTPUT_TARGET_MS = 250.0
STREAM_TARGET_MBS = 200.0  # issue 12
BIG_COMMAND = "head -c 10000000 /dev/zero | base64"


def _expected_big_output() -> int:
    result = subprocess.run(["bash", "-c", f"{BIG_COMMAND} | wc -c"], capture_output=True, check=True)
    return int(result.stdout)


async def stream_throughput(address: str, tls: Any, agent: str, size: int) -> float:
    """MB/s of one run's live output as an in-process client receives it (every byte counted)."""
    from sloth_core.client import MasterClient
    from sloth_core.proto import sloth_pb2 as pb

    received = 0
    status = 0
    async with MasterClient(address, tls) as client:
        await client.list_agents()  # connect first: time the stream, not the handshake
        started = time.perf_counter()
        async for event in client.run(names=[agent], command=f"head -c {size} /dev/zero"):
            kind = event.WhichOneof("kind")
            if kind == "output":
                received += len(event.output.data)
            elif kind == "finished":
                status = event.finished.status
        elapsed = time.perf_counter() - started
    if status != pb.RUN_SUCCEEDED or received != size:
        raise RuntimeError(f"stream run: status {status}, {received} of {size} bytes")
    return size / 1e6 / elapsed


def run(profile: Any, results: Results) -> None:
    n = profile.fanout_agents
    names = [f"f{i:02d}" for i in range(1, n + 1)]
    progress(f"fleet runs: master + {n} agent processes")
    with Cluster("fleet", keep=profile.keep) as cluster:
        cluster.start_master()
        cluster.start_agents(names, timeout=60 + 3 * n)
        cli = cli_argv()

        progress(f"fleet runs: {profile.fanout_runs} x `agent run --all 'echo hi'` on {n} agents")
        cluster.cli("agent", "run", "--all", "echo hi")  # warm-up: the master dials every agent once
        times = []
        for _ in range(profile.fanout_runs):
            result = cluster.cli("agent", "run", "--all", "echo hi")
            if result.returncode != 0 or f"{n} succeeded, 0 failed, 0 rejected".encode() not in result.stderr:
                raise RuntimeError(f"--all run failed ({result.returncode}): {result.stdout[-500:]!r} {result.stderr[-500:]!r}")
            times.append(result.elapsed_s * 1000)
        results.add(Figure(
            "run_all_processes", f"CLI `agent run --all 'echo hi'`, {n} agent processes", "ms", times,
            FANOUT_TARGET_MS if n == FANOUT_AGENTS else None,
            command=command_line([*cli, "agent", "run", "--all", "echo hi"]),
            note="" if n == FANOUT_AGENTS else f"target applies at {FANOUT_AGENTS} agents",
        ))

        expected = _expected_big_output()
        check = cluster.cli("agent", "run", names[0], BIG_COMMAND, "--raw")
        if check.returncode != 0 or len(check.stdout) != expected:
            raise RuntimeError(f"13.5 MB run: exit {check.returncode}, {len(check.stdout)} of {expected} bytes")
        for mode, extra in (("--raw", ["--raw"]), ("normal mode", [])):
            progress(f"fleet runs: {profile.output_runs} x 13.5 MB of output to the CLI ({mode})")
            times = []
            for _ in range(profile.output_runs):
                with open("/dev/null", "wb") as devnull:
                    result = cluster.cli("agent", "run", names[0], BIG_COMMAND, *extra, stdout=devnull)
                if result.returncode != 0:
                    raise RuntimeError(f"13.5 MB run failed ({result.returncode}): {result.stderr[-500:]!r}")
                times.append(result.elapsed_s * 1000)
            results.add(Figure(
                f"big_output_{'raw' if extra else 'normal'}", f"13.5 MB output to the CLI ({mode}, stdout to /dev/null)",
                "ms", times, OUTPUT_TARGET_MS,
                command=command_line([*cli, "agent", "run", names[0], BIG_COMMAND, *extra]) + " > /dev/null",
                note=f"{expected:,} bytes, checked through a pipe once",
            ))

        size = profile.stream_mib * 1024 * 1024
        progress(f"fleet runs: {profile.stream_runs} x live stream of {profile.stream_mib} MiB")
        tls = cluster.admin_tls()
        rates = [asyncio.run(stream_throughput(cluster.address, tls, names[0], size)) for _ in range(profile.stream_runs)]
        results.add(Figure(
            "stream_throughput", f"live stream agent -> master -> client ({profile.stream_mib} MiB)", "MB/s", rates,
            STREAM_TARGET_MBS, higher_is_better=True,
            command=f"MasterClient.run(names=['{names[0]}'], command='head -c {size} /dev/zero'), every byte counted",
            note="MB = 10^6 bytes; time from the Run call to the finished event",
        ))
