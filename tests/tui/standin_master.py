"""A stand-in master for the console's tests, screenshots and benchmark.

It speaks the real gRPC protocol (``sloth_pb2_grpc.MasterServicer`` on a
``grpc.aio`` server made by ``sloth_core.transport``) but its data is
scripted and its clock fixed, so what the console shows is the same on
every run: fixed agent names and addresses, fixed timestamps, canned
command output (stdout, stderr and a failure), and a run history.

Tests start it with :class:`StandinServer`; by hand::

    python tests/tui/standin_master.py --agents 1000 [--port 0]

prints ``PORT <n>`` once it listens, then serves until stdin closes, taking
test hooks from stdin (``status web-2 offline``, ``clear``; answered ``ok``).
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from sloth_core import transport
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_750_000_000.0
"""The stand-in's "now": 2025-06-15 15:06:40 UTC."""

CHUNK_BYTES = 64 * 1024
STATUS = {"online": pb.AGENT_ONLINE, "offline": pb.AGENT_OFFLINE, "stopped": pb.AGENT_STOPPED}

FLEET: tuple[tuple[str, str, dict[str, str], str], ...] = (
    ("web-1", "10.0.1.11:50051", {"role": "web", "zone": "eu-1"}, "online"),
    ("web-2", "10.0.1.12:50051", {"role": "web", "zone": "eu-2"}, "online"),
    ("web-3", "10.0.1.13:50051", {"role": "web", "zone": "eu-1"}, "online"),
    ("db-1", "10.0.2.21:50051", {"role": "db", "zone": "eu-1"}, "online"),
    ("db-2", "10.0.2.22:50051", {"role": "db", "zone": "eu-2"}, "offline"),
    ("cache-1", "10.0.3.31:50051", {"role": "cache", "zone": "eu-1"}, "online"),
    ("batch-1", "10.0.4.41:50051", {"role": "batch", "zone": "eu-2"}, "stopped"),
)
GiB = 1024**3
# name: (CPUs, 1-minute load, memory used %, disk used %); batch-1 reports none (--no-facts).
FACTS: dict[str, tuple[int, float, float, float]] = {
    "web-1": (4, 0.52, 42.0, 61.0),
    "web-2": (4, 3.1, 74.0, 35.0),
    "web-3": (4, 0.2, 38.0, 92.5),
    "db-1": (16, 15.2, 91.0, 77.0),
    "db-2": (16, 0.1, 20.0, 40.0),
    "cache-1": (2, 0.1, 65.0, 12.0),
}


def facts_of(name: str) -> pb.Facts | None:
    if name not in FACTS:
        return None
    cpus, load, mem, disk = FACTS[name]
    mem_total, disk_total = 16 * GiB, 200 * GiB
    return pb.Facts(
        cpus=cpus, load1=load, load5=load * 0.9, load15=load * 0.8,
        mem_total=mem_total, mem_available=int(mem_total * (1 - mem / 100)),
        disk_total=disk_total, disk_used=int(disk_total * disk / 100),
        uptime_s=86_400 * 12 + 3_720, kernel="6.8.0-45-generic", os="Ubuntu 24.04.1 LTS", arch="x86_64",
        addresses=["10.0.1.11" if name == "web-1" else "10.0.9.9", "fd00::11"],
    )


def _id(prefix: str, n: int) -> str:
    """Shaped like the master's ids: ``r-`` or ``j-`` and ten hex digits."""
    kind = "r" if prefix == "run" else "j"
    return f"{kind}-" + hashlib.sha1(f"{prefix}{n}".encode()).hexdigest()[:10]


# ---------------------------------------------------------------- scripts
#
# A script is what a command "does" on one agent: a list of steps, each
# (stream, text or bytes) to print, ("sleep", seconds) to pause, or ("block", None) to
# wait until cancelled; then the exit code.

Step = tuple[Any, Any]


def script_for(command: str, agent: str) -> tuple[list[Step], int]:
    out, err = pb.STDOUT, pb.STDERR
    if command == "uptime":
        return [(out, f" 15:06:41 up 12 days,  3:04,  0 users,  load average: 0.08, 0.03, 0.01  [{agent}]\n")], 0
    if command.startswith("seq "):
        n = int(command.split()[1])
        return [(out, "".join(f"{i}\n" for i in range(1, n + 1)))], 0
    if command.startswith("lines "):
        n = int(command.split()[1])
        body = "".join(f"{i:06d} GET /api/v1/items/{i % 977} 200 {i % 53}ms user-agent=curl/8.5\n" for i in range(1, n + 1))
        return [(out, body)], 0
    if command.startswith("ticker "):
        steps: list[Step] = []
        for i in range(1, int(command.split()[1]) + 1):
            steps += [(out, f"tick {i}\n"), ("sleep", 0.01)]
        return steps, 0
    if command.startswith("sleep ") or command.startswith("tail -f"):
        return [(out, f"{agent}: waiting…\n"), ("block", None)], 0
    if command == "./deploy.sh":
        steps: list[Step] = [
            (out, "==> fetching release v2.4.1\n"),
            (out, "==> unpacking to /srv/app/releases/20250615\n"),
            (out, "==> restarting app.service\n"),
        ]
        if agent == "web-2":
            steps += [
                (err, "error: health check failed: GET http://127.0.0.1:8080/healthz -> 503\n"),
                (err, "error: rolling back to v2.4.0\n"),
            ]
            return steps, 3
        return [*steps, (out, "==> healthy after 1.2s\n"), (out, "deployed v2.4.1\n")], 0
    if command == "apt-get upgrade -y":
        head: list[Step] = [
            (out, "Reading package lists... Done\n"),
            (out, "Building dependency tree... Done\n"),
            (out, "Calculating upgrade... Done\n"),
            (out, "The following packages will be upgraded:\n  libssl3 openssl tzdata\n"),
        ]
        if agent == "db-1":
            return [(err, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n")], 100
        if agent == "web-1":
            return [*head, (out, "Setting up openssl (3.0.13-0ubuntu3.5) ...\n"), (out, "3 upgraded, 0 newly installed.\n")], 0
        return [*head, (out, "Unpacking openssl (3.0.13-0ubuntu3.5) over (3.0.13-0ubuntu3.4) ...\n"), ("block", None)], 0
    if command == "colours":
        return [(out, "\x1b[31mred\x1b[0m \x1b]0;pwned\x07plain [bold]not markup[/]\n"), (err, b"bad \xff byte\n")], 0
    if command == "false":
        return [(err, "command failed\n")], 1
    return [(out, f"ran: {command}\n")], 0


@dataclass
class _Run:
    info: pb.RunInfo
    chunks: list[pb.OutputChunk] = field(default_factory=list)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    followers: set[asyncio.Queue[pb.RunEvent | None]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class StandinMaster(sloth_pb2_grpc.MasterServicer):
    """Deterministic master: fixed fleet and clock, scripted commands, stored history."""

    def __init__(self, agents: int = 0, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.agents: dict[str, pb.AgentInfo] = {}
        self.chunk_bytes = chunk_bytes
        if agents:
            roles = ("web", "db", "cache", "batch")
            for i in range(agents):
                name = f"node-{i + 1:04d}"
                self._add(name, f"10.{i // 250}.{i % 250}.{10 + i % 7}:50051",
                          {"role": roles[i % 4], "zone": f"eu-{i % 3 + 1}"},
                          "offline" if i % 50 == 49 else "online")
        else:
            for name, address, labels, status in FLEET:
                self._add(name, address, labels, status)
        self.runs: dict[str, _Run] = {}
        self.watchers: set[asyncio.Queue[pb.WatchEvent | None]] = set()
        self._runs = 0
        self._jobs = 0
        self.now = T0
        if not agents:
            self._seed_history()

    def _add(self, name: str, address: str, labels: dict[str, str], status: str) -> None:
        offline = status != "online"
        self.agents[name] = pb.AgentInfo(
            name=name, address=address, version="0.1.0", hostname=name + ".example.internal", os="linux",
            labels=labels, status=STATUS[status], registered_at=T0 - 86_400 * 12,
            last_seen=T0 - (300 if offline else 2), facts=facts_of(name),
        )

    def _seed_history(self) -> None:
        """Finished runs from "earlier today", with their output stored."""
        past = [
            ("web-1", "uptime", T0 - 3_600, 0.3),
            ("web-1", "systemctl restart nginx", T0 - 2_400, 1.8),
            ("web-1", "./deploy.sh", T0 - 1_200, 4.2),
            ("db-1", "pg_dump app > /backup/app.sql", T0 - 7_200, 62.5),
            ("web-2", "./deploy.sh", T0 - 1_200, 3.9),
        ]
        for agent, command, started, took in past:
            steps, code = script_for(command, agent)
            if command == "pg_dump app > /backup/app.sql":
                steps, code = [(pb.STDERR, "pg_dump: error: connection to server failed: FATAL: role \"app\" does not exist\n")], 1
            run = self._new_run(_id("hjob", self._jobs), agent, command, created=started)
            self._jobs += 1
            run.info.started_at = started
            run.info.finished_at = started + took
            seq = 0
            for stream, text in steps:
                if stream in (pb.STDOUT, pb.STDERR):
                    seq += 1
                    data = text if isinstance(text, bytes) else text.encode()
                    run.chunks.append(pb.OutputChunk(stream=stream, data=data, seq=seq))
            run.info.status = pb.RUN_SUCCEEDED if code == 0 else pb.RUN_FAILED
            run.info.exit_code = code
            run.done.set()
        # A terminal session (`agent shell`): in the history, with nothing of its screen kept.
        shell = self._new_run(_id("hjob", self._jobs), "web-1", "", created=T0 - 1_800)
        self._jobs += 1
        shell.info.kind = pb.RUN_SHELL
        shell.info.started_at, shell.info.finished_at = T0 - 1_800, T0 - 1_800 + 312.0
        shell.info.status, shell.info.exit_code = pb.RUN_SUCCEEDED, 0
        shell.done.set()

    def _new_run(self, job_id: str, agent: str, command: str, *, created: float | None = None) -> _Run:
        self._runs += 1
        info = pb.RunInfo(
            run_id=_id("run", self._runs), job_id=job_id, agent=agent, command=command,
            requested_by="admin", status=pb.RUN_PENDING, exit_code=-1,
            created_at=self.now if created is None else created,
        )
        run = self.runs[info.run_id] = _Run(info)
        return run

    # ------------------------------------------------------------ events

    def emit(self, event: pb.WatchEvent) -> None:
        for queue in list(self.watchers):
            queue.put_nowait(event)

    def set_status(self, name: str, status: str) -> None:
        """Test hook: an agent changes state (call it on the server's loop)."""
        info = self.agents[name]
        info.status = STATUS[status]
        kind = {"online": pb.AGENT_WENT_ONLINE, "offline": pb.AGENT_WENT_OFFLINE,
                "stopped": pb.AGENT_WENT_STOPPED}[status]
        self.emit(pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info)))

    def add_agent(self, name: str, address: str, labels: dict[str, str]) -> None:
        """Test hook: a new agent registers."""
        self._add(name, address, labels, "online")
        self.emit(pb.WatchEvent(agent=pb.AgentEvent(type=pb.AGENT_REGISTERED, agent=self.agents[name])))

    def touch(self, names: list[str], last_seen: float) -> None:
        """Bench hook: agents report (AGENT_UPDATED)."""
        for name in names:
            info = self.agents[name]
            info.last_seen = last_seen
            self.emit(pb.WatchEvent(agent=pb.AgentEvent(type=pb.AGENT_UPDATED, agent=info)))

    # ------------------------------------------------------------ agents

    async def ListAgents(self, request: pb.ListAgentsRequest, context: Any) -> pb.ListAgentsResponse:
        return pb.ListAgentsResponse(agents=list(self.agents.values()))

    async def GetAgent(self, request: pb.AgentRef, context: Any) -> pb.AgentInfo:
        if request.name not in self.agents:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown agent {request.name!r}")
        return self.agents[request.name]

    async def StopAgent(self, request: pb.AgentRef, context: Any) -> pb.AgentInfo:
        if request.name not in self.agents:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown agent {request.name!r}")
        self.set_status(request.name, "stopped")
        return self.agents[request.name]

    async def DeleteAgent(self, request: pb.AgentRef, context: Any) -> pb.DeleteAgentResponse:
        info = self.agents.pop(request.name, None)
        if info is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown agent {request.name!r}")
        self.emit(pb.WatchEvent(agent=pb.AgentEvent(type=pb.AGENT_DELETED, agent=info)))
        return pb.DeleteAgentResponse()

    # ------------------------------------------------------------ runs

    def _targets(self, target: pb.Target) -> list[str]:
        if target.all:
            return sorted(self.agents)
        names: list[str] = []
        for pattern in target.names:
            matched = sorted(fnmatch.filter(self.agents, pattern)) if any(c in pattern for c in "*?[") else [pattern]
            names += [n for n in matched if n not in names]
        if target.labels:
            names += [
                n for n, a in sorted(self.agents.items())
                if n not in names and all(a.labels.get(k) == v for k, v in target.labels.items())
            ]
        return names

    async def Run(self, request: pb.RunRequest, context: Any) -> AsyncIterator[pb.RunEvent]:
        if not request.command:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty command")
        self._jobs += 1
        job_id = _id("job", self._jobs)
        runs: list[_Run] = []
        for name in self._targets(request.target):
            run = self._new_run(job_id, name, request.command)
            agent = self.agents.get(name)
            if agent is None or agent.status != pb.AGENT_ONLINE:
                run.info.status = pb.RUN_REJECTED
                run.info.error = f"unknown agent {name!r}" if agent is None else f"agent {name} is {pb.AgentStatus.Name(agent.status).removeprefix('AGENT_').lower()}"
                run.done.set()
            runs.append(run)
        queue: asyncio.Queue[pb.RunEvent | None] = asyncio.Queue()
        yield pb.RunEvent(job_id=job_id, job=pb.JobStarted(runs=[r.info for r in runs]))
        live = [r for r in runs if r.info.status != pb.RUN_REJECTED]
        for run in live:
            run.followers.add(queue)
        tasks = [asyncio.create_task(self._execute(run)) for run in live]
        try:
            remaining = len(live)
            while remaining:
                event = await queue.get()
                if event is None:
                    remaining -= 1
                    continue
                if event.HasField("output") and request.no_output:
                    continue
                yield event
        finally:
            for run in live:
                run.cancel.set()
                run.followers.discard(queue)
            await asyncio.gather(*tasks, return_exceptions=True)

    def _publish(self, run: _Run, event: pb.RunEvent) -> None:
        for queue in list(run.followers):
            queue.put_nowait(event)

    async def _execute(self, run: _Run) -> None:
        info = run.info
        self.now += 1.0
        info.status = pb.RUN_RUNNING
        info.started_at = self.now
        started = pb.RunEvent(job_id=info.job_id, run_id=info.run_id, agent=info.agent, started=info)
        self._publish(run, started)
        self.emit(pb.WatchEvent(run=started))
        steps, code = script_for(info.command, info.agent)
        seq = 0
        elapsed = 0.0
        cancelled = False
        for step, payload in steps:
            if step == "block":
                await run.cancel.wait()
                cancelled = True
                break
            if step == "sleep":
                elapsed += payload
                await asyncio.sleep(payload)
                continue
            data = payload if isinstance(payload, bytes) else payload.encode()
            for start in range(0, len(data), self.chunk_bytes):
                seq += 1
                chunk = pb.OutputChunk(stream=step, data=data[start : start + self.chunk_bytes], seq=seq)
                run.chunks.append(chunk)
                self._publish(run, pb.RunEvent(job_id=info.job_id, run_id=info.run_id, agent=info.agent, output=chunk))
                await asyncio.sleep(0)
            elapsed += 0.1
            if run.cancel.is_set():
                cancelled = True
                break
        info.finished_at = info.started_at + (elapsed or 0.1)
        if cancelled:
            # As a real agent reports it: the signal, and the shell's code for it.
            info.status, info.exit_code, info.signal = pb.RUN_CANCELLED, 128 + 15, 15
        else:
            info.status = pb.RUN_SUCCEEDED if code == 0 else pb.RUN_FAILED
            info.exit_code = code
        finished = pb.RunEvent(job_id=info.job_id, run_id=info.run_id, agent=info.agent, finished=info)
        self._publish(run, finished)
        self.emit(pb.WatchEvent(run=finished))
        for queue in list(run.followers):
            queue.put_nowait(None)
        run.done.set()

    async def CancelRun(self, request: pb.CancelRunRequest, context: Any) -> pb.CancelRunResponse:
        hits = [r for r in self.runs.values() if request.id in (r.info.run_id, r.info.job_id)]
        if not hits:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run or job with id {request.id!r}")
        cancelled = []
        for run in hits:
            if not run.done.is_set():
                run.cancel.set()
                cancelled.append(run.info.run_id)
        return pb.CancelRunResponse(cancelled=cancelled)

    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> pb.ListRunsResponse:
        runs = [
            r.info for r in self.runs.values()
            if (not request.agent or r.info.agent == request.agent)
            and (not request.job_id or r.info.job_id == request.job_id)
            and (not request.status or r.info.status == request.status)
        ]
        runs.sort(key=lambda i: (i.created_at, i.run_id), reverse=True)
        return pb.ListRunsResponse(runs=runs[: request.limit or 50])

    async def GetRun(self, request: pb.RunRef, context: Any) -> pb.RunInfo:
        run = self.runs.get(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown run {request.run_id!r}")
        return run.info

    async def StreamRun(self, request: pb.StreamRunRequest, context: Any) -> AsyncIterator[pb.RunEvent]:
        run = self.runs.get(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown run {request.run_id!r}")
        info = run.info
        queue: asyncio.Queue[pb.RunEvent | None] | None = None
        if request.follow and not run.done.is_set():
            queue = asyncio.Queue()
            run.followers.add(queue)
        try:
            last = 0
            for chunk in list(run.chunks):
                last = chunk.seq
                yield pb.RunEvent(job_id=info.job_id, run_id=info.run_id, agent=info.agent, output=chunk)
            if queue is None:
                yield pb.RunEvent(job_id=info.job_id, run_id=info.run_id, agent=info.agent, finished=info)
                return
            while (event := await queue.get()) is not None:
                if event.HasField("output") and event.output.seq <= last:
                    continue
                yield event
        finally:
            if queue is not None:
                run.followers.discard(queue)

    async def Watch(self, request: pb.WatchRequest, context: Any) -> AsyncIterator[pb.WatchBatch]:
        queue: asyncio.Queue[pb.WatchEvent | None] = asyncio.Queue()
        self.watchers.add(queue)
        try:
            active = [r.info for r in self.runs.values() if not r.done.is_set()]
            snapshot = pb.Snapshot(agents=list(self.agents.values()), active_runs=active, server_time=self.now)
            yield pb.WatchBatch(events=[pb.WatchEvent(snapshot=snapshot)])
            while (event := await queue.get()) is not None:
                if event.HasField("run") and event.run.HasField("output") and not request.include_output:
                    continue
                yield pb.WatchBatch(events=[event])
        finally:
            self.watchers.discard(queue)


class StandinServer:
    """Runs the stand-in master as a process on 127.0.0.1 and drives its test hooks.

    A process (not a thread of the test): grpc.aio binds server internals to
    one event loop, and the console under test runs its own (``snap_compare``
    even makes a new one), so a server in the test process cannot be stopped
    cleanly. Hooks go over the process's stdin, one line each, acknowledged.
    """

    def __init__(self, agents: int = 0, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.agents = agents
        self.chunk_bytes = chunk_bytes
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> str:
        """Listen (on ``port``, or a free one) and return the address."""
        env = {**os.environ, "GRPC_VERBOSITY": "NONE", "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--agents", str(self.agents),
             "--port", str(port), "--chunk-bytes", str(self.chunk_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the stand-in master did not start: {line!r}")
        self.port = int(line.split()[1])
        return self.address

    def command(self, *words: str) -> None:
        """Run a test hook in the master (``status web-2 offline``, ``add web-4 ADDR role=web``)."""
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(" ".join(words) + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline().strip()
        if reply != "ok":
            raise RuntimeError(f"stand-in master: {reply or 'no reply'}")

    def stop(self) -> None:
        """Kill the master at once (like a crash): open streams break."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> StandinServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _control(master: StandinMaster, line: str) -> None:
    words = line.split()
    if not words:
        raise ValueError("empty command")
    verb, args = words[0], words[1:]
    if verb == "status":
        master.set_status(args[0], args[1])
    elif verb == "add":
        labels = dict(pair.split("=", 1) for pair in args[2:])
        master.add_agent(args[0], args[1], labels)
    elif verb == "clear":
        for name in list(master.agents):
            info = master.agents.pop(name)
            master.emit(pb.WatchEvent(agent=pb.AgentEvent(type=pb.AGENT_DELETED, agent=info)))
    elif verb == "store":  # store failing CAUSE... | store ok
        failing = args[0] == "failing"
        cause = " ".join(args[1:])
        health = pb.StoreHealth(store="sqlite", failing=failing, cause=cause,
                                warning=f"history is not being saved: {cause}" if failing else "")
        master.emit(pb.WatchEvent(store=health))
    elif verb == "touch":
        names = sorted(master.agents)[: int(args[0])]
        master.touch(names, float(args[1]))
    else:
        raise ValueError(f"unknown command {verb!r}")


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=0, help="a generated fleet of this size (default: the fixed one)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES)
    args = parser.parse_args()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        master = StandinMaster(args.agents, chunk_bytes=args.chunk_bytes)
        server = transport.create_server()
        sloth_pb2_grpc.add_MasterServicer_to_server(master, server)
        port = transport.bind(server, f"127.0.0.1:{args.port}", None)
        await server.start()
        print(f"PORT {port}", flush=True)

        def apply(line: str) -> None:
            try:
                _control(master, line)
            except Exception as exc:  # reported to the test, which raises
                print(f"error: {exc}", flush=True)
            else:
                print("ok", flush=True)

        def read_commands() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(apply, line)
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(server.stop(0)))

        threading.Thread(target=read_commands, daemon=True).start()
        await server.wait_for_termination()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
