"""Prototype: what each liveness/connection shape costs an idle master.

A stripped master (a bare ``grpc.aio`` server, mutual TLS, raw-bytes
methods, no sloth logic) and host processes with many "agents" each on its
own TLS connection. Shapes:

- ``unary``   one unary Heartbeat call per agent per interval (main today);
- ``stream``  (a) heartbeats as messages on one long-lived client stream per
              agent; a job: the master dials every agent's server (one
              channel per agent) and calls Execute (server stream); with
              ``--close-idle`` the channels are closed after the job;
- ``dialout`` (b) one agent-initiated bidirectional stream carries
              heartbeats up and run requests down; a job: the master sends a
              request on each stream, the agent opens a per-run client
              stream to the master for output; the master holds no channels.

    python -m bench.shapes --shape dialout --agents 1000 [--per-process 500]

prints the master's idle CPU (% of one core, per 5 s slice) and RSS before
a job, the job's wall time, and RSS/CPU after it. Security on (one CA, one
certificate for everyone: per-connection cost does not depend on identity).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INTERVAL_S = 5.0
KEEPALIVE_MS = int(os.environ.get("SHAPES_KEEPALIVE_MS", "2000"))
OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.http2.ping_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_concurrent_streams", 100_000),
    ("grpc.so_reuseport", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
]
# Extra options for both ends, as JSON ([["grpc.x", 1], ...]), to try buffer settings.
OPTIONS += [tuple(o) for o in json.loads(os.environ.get("SHAPES_OPTIONS", "[]"))]
# Every agent its own connection, as separate processes would have.
CHANNEL_OPTIONS = [*OPTIONS, ("grpc.use_local_subchannel_pool", 1), ("grpc.ssl_target_name_override", "peer")]


def _ident(x: bytes) -> bytes:
    return x


def _make_pki(home: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from sloth_core.security import ca

    ca_key, ca_cert = ca.create_ca()
    key = ca.generate_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = ca.issue_certificate(ca_key, ca_cert, key.public_key(), "agent", "peer", dns_name="peer")  # type: ignore[arg-type]
    (home / "ca.pem").write_bytes(ca.cert_to_pem(ca_cert))
    (home / "cert.pem").write_bytes(ca.cert_to_pem(cert))
    (home / "key.pem").write_bytes(ca.key_to_pem(key))
    del x509


def _tls(home: Path) -> tuple[bytes, bytes, bytes]:
    return ((home / "ca.pem").read_bytes(), (home / "cert.pem").read_bytes(), (home / "key.pem").read_bytes())


def _server_creds(home: Path) -> Any:
    import grpc

    ca_pem, cert, key = _tls(home)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca_pem, require_client_auth=True)


def _channel(home: Path, target: str) -> Any:
    import grpc
    import grpc.aio

    ca_pem, cert, key = _tls(home)
    return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca_pem, key, cert), options=CHANNEL_OPTIONS)


# ---------------------------------------------------------------- master


async def _master(args: argparse.Namespace) -> None:
    import grpc
    import grpc.aio

    home = Path(args.home)
    sessions: dict[int, asyncio.Queue[bytes]] = {}
    pending: dict[bytes, asyncio.Future[None]] = {}
    beats = [0]

    async def beat(request: bytes, context: Any) -> bytes:
        context.auth_context()  # the real master reads the peer's identity per call
        beats[0] += 1
        return b"ok"

    async def beats_stream(request_iterator: Any, context: Any) -> bytes:
        context.auth_context()  # once per stream
        async for _ in request_iterator:
            beats[0] += 1
        return b"bye"

    async def control(request_iterator: Any, context: Any) -> Any:
        context.auth_context()
        key = id(context)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        sessions[key] = queue

        async def read() -> None:
            async for _ in request_iterator:
                beats[0] += 1

        reader = asyncio.ensure_future(read())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait([getter, reader], return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    return
                yield getter.result()
        finally:
            reader.cancel()
            sessions.pop(key, None)

    async def output(request_iterator: Any, context: Any) -> bytes:
        run_id = b""
        async for message in request_iterator:
            run_id = run_id or message.split(b":", 1)[0]
        fut = pending.pop(run_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        return b"ok"

    handler = grpc.method_handlers_generic_handler("p.Master", {
        "Beat": grpc.unary_unary_rpc_method_handler(beat, _ident, _ident),
        "Beats": grpc.stream_unary_rpc_method_handler(beats_stream, _ident, _ident),
        "Control": grpc.stream_stream_rpc_method_handler(control, _ident, _ident),
        "Output": grpc.stream_unary_rpc_method_handler(output, _ident, _ident),
    })
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers([handler])
    port = server.add_secure_port("127.0.0.1:0", _server_creds(home))
    await server.start()
    channels: list[Any] = []

    async def job_dialout() -> None:
        loop = asyncio.get_running_loop()
        for i, queue in enumerate(list(sessions.values())):
            run_id = f"r{i}-{time.monotonic_ns()}".encode()
            pending[run_id] = loop.create_future()
            queue.put_nowait(run_id)
        await asyncio.gather(*pending.values())

    async def job_dial(addresses: list[str]) -> None:
        gate = asyncio.Semaphore(1000)

        async def one(address: str) -> None:
            async with gate:
                ch = _channel(home, address)
                channels.append(ch)
                call = ch.unary_stream("/p.Agent/Execute", request_serializer=_ident, response_deserializer=_ident)(b"true")
                async for _ in call:
                    pass

        await asyncio.gather(*(one(a) for a in addresses))
        if args.close_idle:
            for ch in channels:
                await ch.close(grace=None)
            channels.clear()

    async def control_loop() -> None:
        # Commands on stdin: "job" (with the agents' addresses for `stream`).
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            started = time.perf_counter()
            if args.shape == "dialout":
                await job_dialout()
            else:
                await job_dial(command["addresses"])
            print(json.dumps({"job_s": time.perf_counter() - started, "beats": beats[0]}), flush=True)

    print(json.dumps({"port": port}), flush=True)
    await control_loop()
    await server.stop(0)


# ---------------------------------------------------------------- agents


async def _agents(args: argparse.Namespace) -> None:
    import grpc
    import grpc.aio

    home = Path(args.home)
    target = f"127.0.0.1:{args.port}"
    address = ""
    if args.shape != "dialout":
        # One server per host process stands in for every agent's server:
        # the master's cost is one TLS channel per agent either way.
        async def execute(request: bytes, context: Any) -> Any:
            yield b"started"
            yield b"output"
            yield b"exit"

        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "p.Agent", {"Execute": grpc.unary_stream_rpc_method_handler(execute, _ident, _ident)})])
        address = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', _server_creds(home))}"
        await server.start()

    async def unary_agent(ch: Any) -> None:
        call = ch.unary_unary("/p.Master/Beat", request_serializer=_ident, response_deserializer=_ident)
        await asyncio.sleep(random.uniform(0, INTERVAL_S))
        while True:
            await call(b"beat", timeout=5)
            await asyncio.sleep(INTERVAL_S * random.uniform(0.8, 1.0))

    async def stream_agent(ch: Any) -> None:
        async def beats() -> Any:
            while True:
                yield b"beat"
                await asyncio.sleep(INTERVAL_S * random.uniform(0.8, 1.0))

        await asyncio.sleep(random.uniform(0, INTERVAL_S))
        await ch.stream_unary("/p.Master/Beats", request_serializer=_ident, response_deserializer=_ident)(beats())

    async def dialout_agent(ch: Any) -> None:
        async def beats() -> Any:
            while True:
                yield b"beat"
                await asyncio.sleep(INTERVAL_S * random.uniform(0.8, 1.0))

        output = ch.stream_unary("/p.Master/Output", request_serializer=_ident, response_deserializer=_ident)

        async def run(run_id: bytes) -> None:
            await output(iter([run_id + b":started", run_id + b":output", run_id + b":exit"]))

        await asyncio.sleep(random.uniform(0, INTERVAL_S))
        call = ch.stream_stream("/p.Master/Control", request_serializer=_ident, response_deserializer=_ident)(beats())
        tasks = set()
        async for run_id in call:
            task = asyncio.ensure_future(run(run_id))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    body = {"unary": unary_agent, "stream": stream_agent, "dialout": dialout_agent}[args.shape]
    channels = [_channel(home, target) for _ in range(args.count)]
    tasks = [asyncio.ensure_future(body(ch)) for ch in channels]
    print(json.dumps({"address": address}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for t in tasks:
        t.cancel()


# ---------------------------------------------------------------- driver


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _idle(pid: int, window_s: float) -> tuple[list[float], float]:
    slices = []
    for _ in range(max(1, int(window_s // INTERVAL_S))):
        before, begun = _cpu(pid), time.perf_counter()
        time.sleep(INTERVAL_S)
        slices.append(round(100 * (_cpu(pid) - before) / (time.perf_counter() - begun), 1))
    return slices, _rss(pid)


def _drive(args: argparse.Namespace) -> int:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    home = Path(tempfile.mkdtemp(prefix="sloth-shapes-"))
    _make_pki(home)
    me = [sys.executable, "-m", "bench.shapes", "--home", str(home), "--shape", args.shape]
    master = subprocess.Popen([*me, "--role", "master", *(["--close-idle"] if args.close_idle else [])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert master.stdout is not None and master.stdin is not None
    port = json.loads(master.stdout.readline())["port"]
    hosts = []
    try:
        for first in range(0, args.agents, args.per_process):
            count = min(args.per_process, args.agents - first)
            hosts.append(subprocess.Popen([*me, "--role", "agents", "--port", str(port), "--count", str(count)],
                                          stdout=subprocess.PIPE))
        addresses = []
        for h in hosts:
            assert h.stdout is not None
            address = json.loads(h.stdout.readline())["address"]
            addresses += [address] * args.per_process
        time.sleep(INTERVAL_S + 2)  # every agent connected and beating
        cpu, rss = _idle(master.pid, args.window)
        report: dict[str, Any] = {"shape": args.shape, "agents": args.agents, "close_idle": args.close_idle,
                                  "keepalive_ms": KEEPALIVE_MS, "extra": os.environ.get("SHAPES_OPTIONS", ""),
                                  "idle_cpu_pct": cpu, "idle_rss_mb": round(rss, 1),
                                  "fds": len(os.listdir(f"/proc/{master.pid}/fd"))}
        jobs = []
        for _ in range(args.jobs):
            master.stdin.write((json.dumps({"addresses": addresses[: args.agents]}) + "\n").encode())
            master.stdin.flush()
            jobs.append(round(json.loads(master.stdout.readline())["job_s"], 2))
        report["job_s"] = jobs
        time.sleep(2)
        cpu, rss = _idle(master.pid, args.window)
        report.update(after_cpu_pct=cpu, after_rss_mb=round(rss, 1), after_fds=len(os.listdir(f"/proc/{master.pid}/fd")),
                      load=os.getloadavg()[0])
        print(json.dumps(report), flush=True)
    finally:
        for h in hosts:
            h.terminate()
        master.terminate()
        for p in [*hosts, master]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shapes")
    p.add_argument("--shape", choices=["unary", "stream", "dialout"], required=True)
    p.add_argument("--role", choices=["drive", "master", "agents"], default="drive")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--per-process", type=int, default=500)
    p.add_argument("--window", type=float, default=15.0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--close-idle", action="store_true")
    p.add_argument("--home")
    p.add_argument("--port", type=int)
    p.add_argument("--count", type=int)
    args = p.parse_args()
    if args.role == "master":
        asyncio.run(_master(args))
        return 0
    if args.role == "agents":
        asyncio.run(_agents(args))
        return 0
    return _drive(args)


if __name__ == "__main__":
    raise SystemExit(main())
