"""Running one command: ``bash -c`` in its own process group, output as chunks.

Pipes are read through a protocol (no per-read coroutine), up to 64 KiB per
chunk; small writes are coalesced for a few milliseconds because throughput
is bounded by the number of messages, not bytes. When nobody drains the
chunks (a slow client), reading the pipes pauses, so the command blocks on its
own writes instead of the agent buffering without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass

from sloth_core.proto import sloth_pb2 as pb

CHUNK_BYTES = 64 * 1024
COALESCE_S = 0.004
HIGH_WATER = 1024 * 1024  # pause the pipes above this much unsent output
KILL_GRACE_S = 2.0
PIPE_DRAIN_S = 1.0  # after the shell exits, how long background writers may hold the pipes


@dataclass
class Outcome:
    status: int
    exit_code: int
    signal: int
    started_at: float
    finished_at: float
    error: str = ""


class _PipeProtocol(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.segments: list[tuple[int, bytearray]] = []
        self.buffered = 0
        self.wake = asyncio.Event()
        self.flush_now = asyncio.Event()  # a full chunk is buffered, or no more will come
        self.open_pipes = {1, 2}
        self.pipes_closed = asyncio.Event()
        self.exited = asyncio.Event()
        self.transport: asyncio.SubprocessTransport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        stream = pb.STDERR if fd == 2 else pb.STDOUT
        if self.segments and self.segments[-1][0] == stream:
            self.segments[-1][1].extend(data)
        else:
            self.segments.append((stream, bytearray(data)))
        self.buffered += len(data)
        self.wake.set()
        if self.buffered >= CHUNK_BYTES:
            self.flush_now.set()
        if self.buffered >= HIGH_WATER and not self.paused:
            self._set_reading(False)

    def _set_reading(self, on: bool) -> None:
        if self.transport is None:
            return
        self.paused = not on
        for fd in (1, 2):
            pipe = self.transport.get_pipe_transport(fd)
            if pipe is not None and not pipe.is_closing():
                if on:
                    pipe.resume_reading()  # type: ignore[attr-defined]
                else:
                    pipe.pause_reading()  # type: ignore[attr-defined]

    def take(self, limit: int) -> tuple[int, bytes] | None:
        """Up to ``limit`` bytes of the oldest stream segment."""
        if not self.segments:
            return None
        stream, buf = self.segments[0]
        if len(buf) <= limit:
            self.segments.pop(0)
            data = bytes(buf)
        else:
            data = bytes(buf[:limit])
            del buf[:limit]
        self.buffered -= len(data)
        if self.paused and self.buffered < HIGH_WATER // 2:
            self._set_reading(True)
        if not self.segments:
            self.wake.clear()
        return stream, data

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.open_pipes.discard(fd)
        if not self.open_pipes:
            self.pipes_closed.set()
            self.flush_now.set()
        self.wake.set()

    def process_exited(self) -> None:
        self.exited.set()
        self.flush_now.set()
        self.wake.set()


class Execution:
    """One command being run. Iterate :meth:`events`; call :meth:`cancel` to stop it."""

    def __init__(self, command: str, timeout_s: float = 0.0, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.env = env
        self.pid = 0
        self._proto: _PipeProtocol | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._stop_reason: int | None = None  # RUN_CANCELLED or RUN_TIMED_OUT
        self._killer: asyncio.Task[None] | None = None
        self.outcome: Outcome | None = None

    async def events(self) -> AsyncGenerator[pb.ExecuteEvent, None]:
        loop = asyncio.get_running_loop()
        started = time.time()
        try:
            transport, proto = await loop.subprocess_exec(
                _PipeProtocol,
                "bash", "-c", self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as one
                env={**os.environ, **self.env} if self.env else None,
            )
        except OSError as exc:
            finished = time.time()
            self.outcome = Outcome(pb.RUN_FAILED, 127, 0, started, finished, f"cannot start bash: {exc}")
            yield _exit_event(self.outcome)
            return
        self._transport, self._proto, self.pid = transport, proto, transport.get_pid()
        started = time.time()  # the command runs from here; spawning can queue behind others
        yield pb.ExecuteEvent(started=pb.ExecStarted(pid=self.pid, started_at=started))
        timer = loop.call_later(self.timeout_s, self._timed_out) if self.timeout_s > 0 else None
        seq = 0
        try:
            drain_deadline: float | None = None
            while True:
                if proto.exited.is_set() and drain_deadline is None:
                    drain_deadline = loop.time() + PIPE_DRAIN_S
                if not proto.segments:
                    if proto.pipes_closed.is_set() and proto.exited.is_set():
                        break
                    wait = None if drain_deadline is None else max(0.0, drain_deadline - loop.time())
                    if wait == 0.0:
                        break  # background children still hold the pipes; do not wait for them
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await proto.wake.wait()
                    if not proto.segments:
                        proto.wake.clear()
                    continue
                if proto.buffered < CHUNK_BYTES and not proto.exited.is_set() and proto.open_pipes:
                    # Let a burst of small writes gather into one message, but
                    # not past a full chunk, the pipes' end or the exit.
                    proto.flush_now.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(COALESCE_S):
                            await proto.flush_now.wait()
                taken = proto.take(CHUNK_BYTES)
                if taken is None:
                    continue
                seq += 1
                stream, data = taken
                yield pb.ExecuteEvent(output=pb.OutputChunk(stream=stream, data=data, seq=seq))  # type: ignore[arg-type]
            await proto.exited.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if not proto.exited.is_set():
                # The consumer went away (master hung up): like a hung-up ssh
                # session, nothing we started may outlive the call.
                self._stop_reason = self._stop_reason or pb.RUN_CANCELLED
                await self._terminate()
            transport.close()
        self.outcome = self._outcome(started)
        yield _exit_event(self.outcome)

    def _outcome(self, started: float) -> Outcome:
        assert self._transport is not None
        code = self._transport.get_returncode()
        finished = time.time()
        sig = -code if code is not None and code < 0 else 0
        exit_code = 128 + sig if sig else (code if code is not None else -1)
        if self._stop_reason == pb.RUN_TIMED_OUT:
            return Outcome(pb.RUN_TIMED_OUT, exit_code, sig, started, finished, f"timed out after {self.timeout_s:g} s")
        if self._stop_reason == pb.RUN_CANCELLED:
            return Outcome(pb.RUN_CANCELLED, exit_code, sig, started, finished, "cancelled")
        status = pb.RUN_SUCCEEDED if exit_code == 0 else pb.RUN_FAILED
        error = f"killed by signal {signal.Signals(sig).name}" if sig else ""
        return Outcome(status, exit_code, sig, started, finished, error)

    def _timed_out(self) -> None:
        if self._stop_reason is None:
            self._stop_reason = pb.RUN_TIMED_OUT
            self._killer = asyncio.ensure_future(self._terminate())

    def cancel(self) -> None:
        """Kill the whole process group: TERM, a grace period, then KILL."""
        if self._stop_reason is None:
            self._stop_reason = pb.RUN_CANCELLED
        if self._killer is None:
            self._killer = asyncio.ensure_future(self._terminate())

    async def _terminate(self) -> None:
        if not self.pid:
            return
        _signal_group(self.pid, signal.SIGTERM)
        proto = self._proto
        if proto is not None and not proto.exited.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_GRACE_S):
                    await proto.exited.wait()
        # Background children may have ignored TERM or outlived the shell.
        _signal_group(self.pid, signal.SIGKILL)
        if proto is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_GRACE_S):
                    await proto.exited.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exit_event(outcome: Outcome) -> pb.ExecuteEvent:
    return pb.ExecuteEvent(exit=pb.ExecExit(**asdict(outcome)))
