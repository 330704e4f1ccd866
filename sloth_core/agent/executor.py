"""Running one command: ``bash -c`` in its own process group, output as chunks.

With ``stdin`` its stdin is a pipe fed from the caller's input; with a
``pty`` (``agent shell``) it runs under a pseudo-terminal: the agent user's
login shell for an empty command, else ``$SHELL -c COMMAND`` as ssh does,
its output one stream (stdout), the caller's keystrokes and window sizes
written to the terminal (:mod:`sloth_core.agent.run_input`).

The agent's process helper (:mod:`sloth_core.agent.processes`) starts it and
hands back its pipes, so nothing the command starts outlives the agent.

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
import pwd
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict, dataclass

from sloth_core.agent import processes, run_input
from sloth_core.proto import sloth_pb2 as pb

CHUNK_BYTES = 64 * 1024
COALESCE_S = 0.004
HIGH_WATER = 1024 * 1024  # pause the pipes above this much unsent output
KILL_GRACE_S = 2.0
PIPE_DRAIN_S = 1.0  # after the shell exits, how long background writers may hold the pipes
DEFAULT_TERM = "dumb"  # the caller sent no TERM: promise nothing
DEFAULT_SIZE = (24, 80)

#: Opens the caller's input for a run (the agent's ``Input`` call); iterate it for RunInput messages.
InputSource = Callable[[], AsyncIterator[pb.RunInput]]


def login_shell() -> str:
    """The agent user's shell from the password database (``/bin/sh`` if it has none)."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell if shell and os.path.isabs(shell) else "/bin/sh"


def terminal_argv(command: str) -> tuple[str, list[str], str]:
    """(program, argv, directory) for a run under a terminal, as sshd starts a session.

    No command: a login shell (argv[0] ``-bash``) in the home directory.
    A command: ``SHELL -c COMMAND`` where the agent runs.
    """
    shell = login_shell()
    if command.strip():
        return shell, [shell, "-c", command], ""
    home = os.path.expanduser("~")
    return shell, ["-" + os.path.basename(shell)], home if os.path.isdir(home) else ""


@dataclass
class Outcome:
    status: int
    exit_code: int
    signal: int
    started_at: float
    finished_at: float
    error: str = ""


class _PipeEnd(asyncio.Protocol):
    """One of the command's pipes, feeding the shared :class:`_PipeProtocol`."""

    def __init__(self, owner: _PipeProtocol, fd: int) -> None:
        self.owner, self.fd = owner, fd

    def data_received(self, data: bytes) -> None:
        self.owner.pipe_data_received(self.fd, data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.pipe_connection_lost(self.fd, exc)


class _PipeProtocol:
    def __init__(self) -> None:
        self.segments: list[tuple[int, bytearray]] = []
        self.buffered = 0
        self.wake = asyncio.Event()
        self.flush_now = asyncio.Event()  # a full chunk is buffered, or no more will come
        self.open_pipes = {1, 2}  # one (stdout) under a terminal
        self.pipes_closed = asyncio.Event()
        self.exited = asyncio.Event()
        self.pipes: dict[int, asyncio.ReadTransport] = {}
        self.returncode: int | None = None
        self.helper_died = False
        self.paused = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
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
        self.paused = not on
        for pipe in self.pipes.values():
            if not pipe.is_closing():
                if on:
                    pipe.resume_reading()
                else:
                    pipe.pause_reading()

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

    def process_exited(self, status: asyncio.Future[int | None]) -> None:
        wait_status = status.result() if not status.cancelled() else None
        if wait_status is None:
            self.helper_died = True
        else:
            self.returncode = os.waitstatus_to_exitcode(wait_status)
        self.exited.set()
        self.flush_now.set()
        self.wake.set()


class Execution:
    """One command being run. Iterate :meth:`events`; call :meth:`cancel` to stop it."""

    def __init__(
        self,
        command: str,
        timeout_s: float = 0.0,
        env: dict[str, str] | None = None,
        cwd: str = "",
        where: str = "",
        *,
        stdin: bool = False,
        pty: pb.Pty | None = None,
        inputs: InputSource | None = None,
    ) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.env = env  # added to the agent's environment, less its SLOTH_RUNNER_* settings
        self.cwd = cwd  # where it starts; empty: the agent's own directory
        self.where = where  # the agent's name, for errors
        self.stdin = stdin  # a stdin pipe fed from ``inputs``; else /dev/null
        self.pty = pty  # run under a pseudo-terminal fed from ``inputs``
        self.inputs = inputs  # None: no input will come (stdin is closed at once)
        self.pid = 0
        self._proto: _PipeProtocol | None = None
        self._helper: processes.ProcessHelper | None = None
        self._stop_reason: int | None = None  # RUN_CANCELLED or RUN_TIMED_OUT
        self._killer: asyncio.Task[None] | None = None
        self.outcome: Outcome | None = None

    async def events(self) -> AsyncGenerator[pb.ExecuteEvent, None]:
        loop = asyncio.get_running_loop()
        started = time.time()
        program = "bash"
        try:
            if self.cwd and not os.path.isdir(self.cwd):
                raise NotADirectoryError(self.cwd)
            helper = self._helper = await processes.shared()
            if self.pty is not None:
                program, argv, home = terminal_argv(self.command)
                rows, cols = self.pty.size.rows or DEFAULT_SIZE[0], self.pty.size.cols or DEFAULT_SIZE[1]
                env = {**(self.env or {}), "TERM": self.pty.term or DEFAULT_TERM}
                terminal = processes.Terminal(program, min(rows, 10_000), min(cols, 10_000))
                child = await helper.spawn(argv, env, self.cwd or home, terminal=terminal)
            else:
                child = await helper.spawn(["bash", "-c", self.command], self.env or {}, self.cwd, stdin=self.stdin)
        except OSError as exc:
            finished = time.time()
            if self.cwd and not os.path.isdir(self.cwd):
                # Said plainly, not as bash's "cd: ...": nothing ran.
                where = f" on {self.where}" if self.where else ""
                self.outcome = Outcome(pb.RUN_FAILED, -1, 0, started, finished, f"no such directory{where}: {self.cwd}")
            else:
                self.outcome = Outcome(pb.RUN_FAILED, 127, 0, started, finished, f"cannot start {program}: {exc}")
            yield _exit_event(self.outcome)
            return
        proto = _PipeProtocol()
        self._proto, self.pid = proto, child.pid
        child.exited.add_done_callback(proto.process_exited)
        # Under a terminal one descriptor carries everything: output (EIO
        # once the terminal's last user closes it is the normal end), and,
        # through a duplicate for the writer, input and window sizes.
        outputs = ((1, child.stdout), (2, child.stderr)) if child.stderr >= 0 else ((1, child.stdout),)
        proto.open_pipes = {fd for fd, _ in outputs}
        input_fd = os.dup(child.stdout) if self.pty is not None else child.stdin
        for fd, pipe_fd in outputs:
            pipe, _ = await loop.connect_read_pipe(
                lambda fd=fd: _PipeEnd(proto, fd), open(pipe_fd, "rb", buffering=0)  # type: ignore[misc]
            )
            proto.pipes[fd] = pipe  # type: ignore[assignment]
        feeder = self._start_feeding(input_fd)
        if self._stop_reason is not None:
            # Cancelled (or timed out) while it was starting: the kill then had no pid.
            self._killer = asyncio.ensure_future(self._terminate())
        started = time.time()  # the command runs from here; spawning can queue behind others
        try:
            yield pb.ExecuteEvent(started=pb.ExecStarted(pid=self.pid, started_at=started))
        except BaseException:
            if feeder is not None:
                feeder.cancel()
            raise
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
                # A terminal's screen goes out at once: a keystroke's echo
                # must not wait for company (a screenful arrives in large
                # reads anyway, and the master relays each read as it comes).
                if (
                    self.pty is None and proto.buffered < CHUNK_BYTES and not proto.exited.is_set()
                    and proto.open_pipes
                ):
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
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(BaseException):
                    await feeder
            if not proto.exited.is_set():
                # The consumer went away (master hung up): like a hung-up ssh
                # session, nothing we started may outlive the call.
                self._stop_reason = self._stop_reason or pb.RUN_CANCELLED
                await self._terminate()
            for pipe in proto.pipes.values():
                pipe.close()
        self.outcome = self._outcome(started)
        yield _exit_event(self.outcome)

    def _start_feeding(self, fd: int) -> asyncio.Task[None] | None:
        """Feed the caller's input into ``fd`` (closed at once when no input will come)."""
        if fd < 0:
            return None
        if self.inputs is None:
            run_input.close_quietly(fd)
            return None
        return asyncio.create_task(self._feed(fd), name=f"input of pid {self.pid}")

    async def _feed(self, fd: int) -> None:
        assert self.inputs is not None
        inputs = self.inputs()
        try:
            await run_input.feed(inputs, fd, terminal=self.pty is not None)
        finally:
            # Ends the Input call too: the master stops relaying for this run.
            await inputs.aclose()  # type: ignore[attr-defined]

    def _outcome(self, started: float) -> Outcome:
        assert self._proto is not None
        code = self._proto.returncode
        finished = time.time()
        if self._proto.helper_died:
            return Outcome(pb.RUN_FAILED, -1, 0, started, finished, "the agent's process helper died; the command was killed")
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
        if not self.pid or self._helper is None:
            return
        # A terminal session ends as a hung-up terminal does (an interactive
        # shell ignores TERM), and reaches its jobs, each in a group of its own.
        session = self.pty is not None
        self._helper.signal_group(self.pid, signal.SIGHUP if session else signal.SIGTERM, whole_session=session)
        proto = self._proto
        if proto is not None and not proto.exited.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_GRACE_S):
                    await proto.exited.wait()
        # Background children may have ignored TERM or outlived the shell.
        self._helper.signal_group(self.pid, signal.SIGKILL, whole_session=session)
        if proto is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_GRACE_S):
                    await proto.exited.wait()


def _exit_event(outcome: Outcome) -> pb.ExecuteEvent:
    return pb.ExecuteEvent(exit=pb.ExecExit(**asdict(outcome)))
