"""The fleet simulator: many real agents hosted in a few processes.

Each simulated agent is the project's own agent, assembled exactly as
`sloth-runner agent start` assembles it (:class:`sloth_core.agent.server.Agent`:
its own :class:`~sloth_core.agent.runs.RunTable` running `bash -c` in a new
process group, its own :class:`~sloth_core.agent.session.MasterSession`
with its own TLS channel and session stream to the master; like a default
`agent start`, no inbound port). Each has its own name, data dir and
certificate, obtained through the real join flow (CSR + token proof to the
master's join port). The master cannot tell them from agent processes: only
the Python process they share is different, so 1,000 of them fit on a
2-core machine (4 processes x 250 agents; 10,000 as 20 x 500).

Host process (started by :class:`SimFleet`)::

    python -m bench.fleet_sim --master ADDR --home HOME --first 0 --count 250 [--join-only]

It writes one JSON line to stdout when every agent is up (or joined), then,
unless ``--join-only``, keeps them running until SIGTERM/SIGINT and stops
them gracefully. Agent names are ``sim-0000``, ``sim-0001``, ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREFIX = "sim"
START_CONCURRENCY = 25  # agents starting at once in one host process
JOINS_AT_ONCE = 40  # across all host processes: the master signs one CSR at a time
JOIN_ATTEMPTS = 5


def agent_name(index: int) -> str:
    return f"{PREFIX}-{index:04d}"


# ---------------------------------------------------------------- host process


def _config(name: str, args: argparse.Namespace) -> Any:
    from sloth_core.agent.server import AgentConfig

    home = Path(args.home)
    return AgentConfig(
        name=name,
        master=args.master,
        data_dir=home / "agents" / name,
        port=None,  # dials out only, as `agent start` does by default
        labels={"sim": "yes", "group": str(int(name.rsplit("-", 1)[1]) % 10)},
        facts=not getattr(args, "no_facts", False),
        insecure=args.insecure,
        master_data_dir=home / "master",  # same user, same machine: the local token is found
    )


async def _gather_limited(coros: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


async def _join(config: Any) -> None:
    """The real join flow, in this process: `agent start` runs the same in a child
    process of its own (:mod:`sloth_core.agent.joining`), which for 10,000 agents
    would be 10,000 interpreters."""
    from sloth_core import paths
    from sloth_core.errors import MasterUnreachableError
    from sloth_core.security import join

    token = join.find_local_token(paths.master_data_dir(config.master_data_dir))
    if not token:
        raise RuntimeError("no local join token")
    for attempt in range(JOIN_ATTEMPTS):
        try:
            await join.join_master(config.master, token, config.name, config.data_dir)
            return
        except MasterUnreachableError:
            # A busy join port times out: try again later, as an operator would.
            if attempt == JOIN_ATTEMPTS - 1:
                raise
            await asyncio.sleep(1 + attempt)


async def _host(args: argparse.Namespace) -> int:
    from sloth_core.agent.server import Agent

    names = [agent_name(i) for i in range(args.first, args.first + args.count)]
    started = time.perf_counter()
    if args.join_only:
        outcomes = await _gather_limited([_join(_config(n, args)) for n in names], args.concurrency)
        errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        _emit({"event": "joined", "count": len(names) - len(errors), "errors": errors[:5],
               "elapsed_s": time.perf_counter() - started})
        return 1 if errors else 0

    agents = [Agent(_config(n, args)) for n in names]
    outcomes = await _gather_limited([a.start() for a in agents], args.concurrency)
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    up = [a for a, o in zip(agents, outcomes, strict=True) if not isinstance(o, BaseException)]
    _emit({"event": "started", "count": len(up), "errors": errors[:5], "elapsed_s": time.perf_counter() - started})

    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await asyncio.gather(*(a.stop(grace=0.2) for a in up), return_exceptions=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_sim", description="host simulated agents")
    p.add_argument("--master", required=True)
    p.add_argument("--home", required=True, help="SLOTH_RUNNER_HOME: agents keep their certificates below it")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=START_CONCURRENCY)
    p.add_argument("--join-only", action="store_true", help="join (get certificates) and exit")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--no-facts", action="store_true", help="agents report no facts (bench.facts_cost compares)")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SLOTH_SIM_LOG_LEVEL", "WARNING"), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_host(args))


# ---------------------------------------------------------------- orchestrator


class SimFleet:
    """Starts and stops host processes for agents ``sim-0000`` .. ``sim-{count-1}``."""

    def __init__(
        self, cluster: Any, count: int, per_process: int = 250, max_processes: int = 20, extra: tuple[str, ...] = ()
    ) -> None:
        self.cluster = cluster
        self.extra = extra  # more host-process flags (--no-facts)
        self.count = count
        # Past max_processes x per_process, processes grow instead: 40 Python
        # processes would cost the 2-core machine more than the master does.
        self.per_process = max(per_process, math.ceil(count / max_processes))
        self.hosts: list[subprocess.Popen[bytes]] = []

    def _slices(self) -> list[tuple[int, int]]:
        processes = max(1, math.ceil(self.count / self.per_process))
        size = math.ceil(self.count / processes)
        return [(first, min(size, self.count - first)) for first in range(0, self.count, size)]

    def _spawn(self, first: int, count: int, *extra: str) -> subprocess.Popen[bytes]:
        from bench._infra import bench_module, spawn

        exe, env = bench_module("fleet_sim", self.cluster.env)
        argv = [
            *exe, "--master", self.cluster.address, "--home", str(self.cluster.home),
            "--first", str(first), "--count", str(count), *self.cluster.flags, *extra,
        ]
        return spawn(argv, env=env, log=self.cluster.log(f"sim-{first}"), stdout=subprocess.PIPE)

    @property
    def processes(self) -> int:
        return len(self._slices())

    def join(self, timeout: float = 600.0) -> float:
        """Every agent joins the master (CSR, certificate); returns the wall time of the whole."""
        from bench._infra import stop

        started = time.perf_counter()
        per = str(max(1, JOINS_AT_ONCE // self.processes))
        procs = [self._spawn(first, count, "--join-only", "--concurrency", per) for first, count in self._slices()]
        try:
            for proc in procs:
                out, _ = proc.communicate(timeout=timeout)
                report = _last_json(out)
                if proc.returncode != 0 or report.get("count") is None:
                    raise RuntimeError(f"joining failed: {report or out[-500:]!r}")
        finally:
            for proc in procs:
                stop(proc)
        return time.perf_counter() - started

    def start(self) -> None:
        """Spawn the host processes (they start their agents concurrently); returns at once."""
        self.hosts = [self._spawn(first, count, *self.extra) for first, count in self._slices()]

    def wait_started(self, timeout: float) -> None:
        """Wait for every host to report its agents started (not yet that the master saw them)."""
        deadline = time.monotonic() + timeout
        for proc in self.hosts:
            assert proc.stdout is not None
            line = _readline(proc, deadline)
            report = json.loads(line) if line else {}
            if report.get("errors"):
                raise RuntimeError(f"simulated agents failed to start: {report['errors']}")

    def stop(self) -> None:
        from bench._infra import stop_many

        stop_many(self.hosts, timeout=15.0)
        self.hosts = []


def _last_json(out: bytes) -> dict[str, Any]:
    for line in reversed(out.decode(errors="replace").splitlines()):
        with contextlib.suppress(ValueError):
            return dict(json.loads(line))
    return {}


def _readline(proc: subprocess.Popen[bytes], deadline: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                return proc.stdout.readline().decode(errors="replace")
            if proc.poll() is not None:
                raise RuntimeError(f"a simulator host exited with {proc.returncode}")
    raise TimeoutError("a simulator host did not report in time")


if __name__ == "__main__":
    raise SystemExit(main())
