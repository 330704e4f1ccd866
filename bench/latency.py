"""Latency and footprint of one run (the core and security issues' figures).

Real processes: `sloth-runner master` and `sloth-runner agent start`, then

- the whole CLI process `sloth-runner agent run a1 'echo hi'`, timed from
  spawn to exit (security on, then off);
- in-process dispatch: a warm :class:`~sloth_core.client.MasterClient` in this
  process runs `echo hi` on a1 and reads the stream to its end;
- idle RSS of the agent and the master after one warm-up run.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from bench._infra import Cluster, Figure, Results, cli_argv, command_line, progress, pss_mb, rss_mb, stop
from sloth_core.harness import wait_for

# Issue 12's targets.
CLI_TARGET_MS = 100.0
DISPATCH_TARGET_MS = 5.0
AGENT_RSS_TARGET_MB = 36.0  # restarted; the first start (it joined) may use up to 40
AGENT_FIRST_RSS_TARGET_MB = 40.0
MASTER_RSS_TARGET_MB = 50.0
HELPER_RSS_TARGET_MB = 15.0
IDLE_SETTLE_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def dispatch_times(address: str, tls: Any, agent: str, runs: int, warmup: int = 3) -> list[float]:
    """Milliseconds per `echo hi` through client → master → agent → back, on one warm channel."""
    from sloth_core.client import MasterClient
    from sloth_core.proto import sloth_pb2 as pb

    times: list[float] = []
    async with MasterClient(address, tls) as client:
        for i in range(warmup + runs):
            started = time.perf_counter()
            output = b""
            status = 0
            async for event in client.run(names=[agent], command="echo hi"):
                kind = event.WhichOneof("kind")
                if kind == "output":
                    output += event.output.data
                elif kind == "finished":
                    status = event.finished.status
            elapsed = time.perf_counter() - started
            if status != pb.RUN_SUCCEEDED or output != b"hi\n":
                raise RuntimeError(f"in-process run failed: status {status}, output {output!r}")
            if i >= warmup:
                times.append(elapsed * 1000)
    return times


def _process_helper(agent_pid: int) -> int | None:
    """The agent's process helper (sloth_core/agent/spawner.py), a child of the agent."""
    import os

    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == agent_pid and b"spawner.py" in cmdline:
            return int(entry)
    return None


def _cryptography(pid: int) -> str:
    """Whether the process has ``cryptography`` loaded, as a note says it."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "cryptography loaded" if "cryptography" in f.read() else "no cryptography loaded"
    except OSError:
        return "cryptography: unknown"


def _idle_rss(pid: int, samples: int = 5) -> tuple[list[float], float | None]:
    time.sleep(IDLE_SETTLE_S)
    values = []
    for _ in range(samples):
        values.append(rss_mb(pid))
        time.sleep(0.2)
    return values, pss_mb(pid)


def _cli_runs(cluster: Cluster, agent: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        result = cluster.cli("agent", "run", agent, "echo hi")
        if result.returncode != 0 or b"hi" not in result.stdout:
            raise RuntimeError(f"`agent run` failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        times.append(result.elapsed_s * 1000)
    return times


def run(profile: Any, results: Results) -> None:
    for insecure in (False, True):
        mode = "security off" if insecure else "security on"
        suffix = "-insecure" if insecure else ""
        cli_cmd = command_line([*cli_argv(), "agent", "run", "a1", "echo hi", *(["--insecure"] if insecure else [])])
        progress(f"latency ({mode}): master + agent a1")
        with Cluster(f"latency{suffix}", insecure=insecure, keep=profile.keep) as cluster:
            cluster.start_master()
            agent_port = _free_port()
            start_agent_argv = ["--port", str(agent_port)]
            cluster.start_agents(["a1"], *start_agent_argv)
            _cli_runs(cluster, "a1", 1)  # warm-up: the master opens its channel to a1

            if not insecure:
                assert cluster.master is not None
                master_rss, master_pss = _idle_rss(cluster.master.pid)
                agent_rss, agent_pss = _idle_rss(cluster.agents["a1"].pid)
                results.add(Figure(
                    "agent_idle_rss", "agent idle RSS (first start: joined in this process)", "MB", agent_rss,
                    AGENT_FIRST_RSS_TARGET_MB, command="sloth-runner agent start --name a1 ... ; /proc/PID/statm after 1 run + 1 s idle",
                    note=f"PSS {agent_pss:.1f} MB" if agent_pss else "",
                ))
                results.add(Figure(
                    "master_idle_rss", "master idle RSS (1 agent; it made its CA and signed the agent's join)", "MB",
                    master_rss, MASTER_RSS_TARGET_MB,
                    command="sloth-runner master ... ; /proc/PID/statm after 1 run + 1 s idle",
                    note=f"PSS {master_pss:.1f} MB; {_cryptography(cluster.master.pid)} (it signs in a child)"
                    if master_pss else "",
                ))

            progress(f"latency ({mode}): {profile.cli_runs} x `agent run a1 'echo hi'`")
            results.add(Figure(
                f"cli_run{suffix.replace('-', '_')}", f"CLI `agent run a1 'echo hi'` ({mode})", "ms",
                _cli_runs(cluster, "a1", profile.cli_runs), CLI_TARGET_MS, command=cli_cmd,
                note="whole process, spawn to exit",
            ))

            progress(f"latency ({mode}): {profile.inproc_runs} in-process dispatches")
            samples = asyncio.run(dispatch_times(cluster.address, cluster.admin_tls(), "a1", profile.inproc_runs))
            results.add(Figure(
                f"dispatch{suffix.replace('-', '_')}", f"in-process dispatch, warm channel ({mode})", "ms", samples,
                DISPATCH_TARGET_MS, command="MasterClient.run(names=['a1'], command='echo hi') to the end of its stream",
            ))

            if not insecure:
                floor = []
                for _ in range(max(5, profile.cli_runs // 2)):
                    floor.append(cluster.cli("--version").elapsed_s * 1000)
                results.add(Figure(
                    "cli_floor", "CLI start-up floor: `sloth-runner --version`", "ms", floor,
                    command=command_line([*cli_argv(), "--version"]),
                    note="interpreter + site + argparse; no grpc",
                ))
                progress("latency: agent restarted from its stored certificate")
                stop(cluster.agents.pop("a1"))
                cluster.start_agents(["a1"], *start_agent_argv)
                _cli_runs(cluster, "a1", 1)
                agent_rss, agent_pss = _idle_rss(cluster.agents["a1"].pid)
                helper = _process_helper(cluster.agents["a1"].pid)
                if helper is not None:
                    helper_pss = pss_mb(helper)
                    results.add(Figure(
                        "agent_helper_rss", "agent's process helper RSS (starts every command)", "MB",
                        [rss_mb(helper)], HELPER_RSS_TARGET_MB,
                        command="sloth-runner agent start ...; /proc/PID/statm of its child spawner.py",
                        note=f"PSS {helper_pss:.1f} MB; no grpc" if helper_pss else "no grpc",
                    ))
                results.add(Figure(
                    "agent_idle_rss_restarted", "agent idle RSS (restarted, already joined)", "MB", agent_rss,
                    AGENT_RSS_TARGET_MB, command="sloth-runner agent start --name a1 ... (second start); /proc/PID/statm",
                    note=f"PSS {agent_pss:.1f} MB" if agent_pss else "",
                ))
                progress("latency: master restarted on its port (the steady state: it issues no certificate)")
                port = cluster.port
                cluster.stop_master()
                cluster.start_master("-p", str(port))  # the last -p counts
                wait_for(lambda: cluster.cli("agent", "run", "a1", "echo hi").stdout == b"hi\n", 30,
                         "a1 back on the restarted master", interval=0.2)
                assert cluster.master is not None
                master_rss, master_pss = _idle_rss(cluster.master.pid)
                results.add(Figure(
                    "master_idle_rss_restarted", "master idle RSS (1 agent; restarted, issues nothing)", "MB",
                    master_rss, MASTER_RSS_TARGET_MB,
                    command="sloth-runner master ... (second start, same data dir); /proc/PID/statm after 1 run + 1 s idle",
                    note=f"PSS {master_pss:.1f} MB; {_cryptography(cluster.master.pid)}" if master_pss else "",
                ))

