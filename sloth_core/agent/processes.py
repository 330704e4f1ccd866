"""The agent's side of its process helper (:mod:`sloth_core.agent.spawner`).

The agent never forks commands itself: it asks the helper, which starts each
one in its own session, hands back the pipes and the pid, reports the exit
status, and kills every group it started when the agent dies. One helper per
agent process (per event loop), started with the agent so that leftovers of
an earlier instance are killed before the agent takes runs.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sloth_core.agent import spawner
from sloth_core.names import SECRET_PREFIX

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 3.0


def command_environment() -> dict[str, str]:
    """The environment every command starts from: the agent's, less its own secrets."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SECRET_PREFIX)}


@dataclass
class Child:
    pid: int  # also its process group and session id
    stdout: int  # under a pseudo-terminal: its master side (output, input and window size)
    stderr: int  # -1 under a pseudo-terminal (one stream)
    exited: asyncio.Future[int | None]  # wait status; None if the helper died first (and killed it)
    stdin: int = -1  # the write end of its stdin pipe, when asked for; else its stdin is /dev/null


@dataclass(frozen=True)
class Terminal:
    """Run under a pseudo-terminal: ``file`` is exec'd with the argv given (``-bash`` for a login shell)."""

    file: str
    rows: int
    cols: int


class ProcessHelper:
    def __init__(self, record_dir: Path | None = None) -> None:
        self.record_dir = record_dir
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready: asyncio.Future[list[int]] | None = None
        self._spawns: dict[int, asyncio.Future[Child]] = {}
        self._fd_counts: dict[int, int] = {}  # spawn id -> how many descriptors its reply carries
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._next_id = 0
        # Requests the helper's full queue could not take yet. Our own queue
        # because asyncio keeps one writer callback per fd: concurrent
        # sock_sendall calls on one socket lose each other's wake-ups.
        self._outbox: collections.deque[tuple[int, bytes]] = collections.deque()

    @property
    def alive(self) -> bool:
        return self._sock is not None

    async def start(self) -> list[int]:
        """Start the helper; return the leftover process groups it killed."""
        loop = self.loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-S", "-E", spawner.__file__, str(theirs.fileno()), str(os.getpid())]
        if self.record_dir is not None:
            argv.append(str(self.record_dir))
        try:
            self._proc = subprocess.Popen(
                argv, pass_fds=(theirs.fileno(),), env=command_environment(),
                stdin=subprocess.DEVNULL, close_fds=True,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        async with asyncio.timeout(READY_TIMEOUT_S):
            swept = await asyncio.shield(self._ready)
        if swept:
            log.warning(
                "killed %d process group(s) that an earlier run of this agent left behind: %s",
                len(swept), ", ".join(map(str, swept)),
            )
        return swept

    async def spawn(
        self, argv: list[str], extra_env: dict[str, str], cwd: str = "", *,
        stdin: bool = False, terminal: Terminal | None = None,
    ) -> Child:
        """Start ``argv`` in a new session (in ``cwd``, else the agent's); raises OSError when it cannot start.

        ``stdin``: give it a pipe for stdin (:attr:`Child.stdin`) rather than /dev/null.
        ``terminal``: run it under a new pseudo-terminal of that size instead of pipes.
        """
        if self._sock is None or self.loop is None:
            raise OSError("the agent's process helper is not running")
        self._next_id += 1
        ident = self._next_id
        options: dict[str, object] = {}
        if terminal is not None:
            options = {"pty": (terminal.rows, terminal.cols), "file": terminal.file}
        elif stdin:
            options = {"stdin": True}
        started: asyncio.Future[Child] = self.loop.create_future()
        self._spawns[ident] = started
        self._fd_counts[ident] = 1 if terminal is not None else 3 if stdin else 2
        try:
            self._send(ident, marshal.dumps((spawner.SPAWN, ident, argv, extra_env, cwd, options)))
            return await started
        finally:
            self._spawns.pop(ident, None)
            self._fd_counts.pop(ident, None)

    def signal_group(self, pgid: int, sig: signal.Signals, *, whole_session: bool = False) -> None:
        """Signal a group the helper started (it checks the group is still that one).

        ``whole_session``: every process of the session it leads, in whatever
        group (a terminal session's shell gives each job a group of its own).
        """
        if self._sock is None:
            return  # the helper died, and killed its groups
        kind = spawner.SIGNAL_SESSION if whole_session else spawner.SIGNAL
        with contextlib.suppress(OSError):
            self._send(0, marshal.dumps((kind, pgid, int(sig))))

    def _send(self, ident: int, message: bytes) -> None:
        """Send now, or queue behind what is already waiting; OSError if it can never go."""
        assert self._sock is not None and self.loop is not None
        if not self._outbox:
            try:
                self._sock.send(message)
                return
            except BlockingIOError:
                self.loop.add_writer(self._sock.fileno(), self._flush)
        self._outbox.append((ident, message))

    def _flush(self) -> None:
        while self._outbox and self._sock is not None:
            ident, message = self._outbox[0]
            try:
                self._sock.send(message)
            except BlockingIOError:
                return
            except OSError as exc:
                waiter = self._spawns.get(ident)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
            self._outbox.popleft()
        if self._sock is not None:
            assert self.loop is not None
            self.loop.remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        assert self._sock is not None
        while self._sock is not None:
            try:
                data, ancdata, _, _ = self._sock.recvmsg(spawner.MAX_MESSAGE, socket.CMSG_SPACE(3 * 4))
            except BlockingIOError:
                return
            except OSError:
                data, ancdata = b"", []
            if not data:
                self._lost()
                return
            fds = array.array("i")
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            self._dispatch(marshal.loads(data), list(fds))

    def _dispatch(self, message: tuple, fds: list[int]) -> None:  # type: ignore[type-arg]
        kind = message[0]
        if kind == spawner.STARTED:
            _, ident, pid = message
            assert self.loop is not None
            exited: asyncio.Future[int | None] = self.loop.create_future()
            self._exits[pid] = exited
            waiter = self._spawns.get(ident)
            if waiter is not None and not waiter.done() and len(fds) == self._fd_counts.get(ident):
                if len(fds) == 1:
                    waiter.set_result(Child(pid, fds[0], -1, exited))
                else:
                    waiter.set_result(Child(pid, fds[0], fds[1], exited, stdin=fds[2] if len(fds) > 2 else -1))
            else:  # the run was abandoned while starting
                for fd in fds:
                    os.close(fd)
                self.signal_group(pid, signal.SIGKILL)
        elif kind == spawner.FAILED:
            _, ident, error = message
            waiter = self._spawns.get(ident)
            if waiter is not None and not waiter.done():
                waiter.set_exception(OSError(error))
        elif kind == spawner.EXITED:
            _, pid, status = message
            done = self._exits.pop(pid, None)
            if done is not None and not done.done():
                done.set_result(status)
        elif kind == spawner.READY and self._ready is not None and not self._ready.done():
            self._ready.set_result(list(message[1]))

    def _lost(self) -> None:
        """The helper is gone: it killed every group on its way out (or is dead itself)."""
        if self._sock is not None:
            log.error("the agent's process helper exited; its commands were killed")
        self._detach()
        for waiter in self._spawns.values():
            if not waiter.done():
                waiter.set_exception(OSError("the agent's process helper exited"))
        for done in self._exits.values():
            if not done.done():
                done.set_result(None)
        self._exits.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(OSError("the agent's process helper failed to start"))

    def _detach(self) -> None:
        self._outbox.clear()
        if self._sock is not None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.remove_reader(self._sock.fileno())
                self.loop.remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            self._proc.poll()  # reap it if it is already gone

    async def close(self) -> None:
        """Close our end: the helper kills what is still running, then exits."""
        proc = self._proc
        self._detach()
        self._lost()
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, EXIT_TIMEOUT_S)


_shared: ProcessHelper | None = None
_users = 0  # agents of this process using it: the fleet simulator hosts hundreds in one


async def start_shared(record_dir: Path | None) -> ProcessHelper:
    """The process's helper, started now (so leftovers are killed before the agent takes runs).

    Agents hosted in one process share one helper, recording in the first one's data dir.
    """
    global _users
    _users += 1
    return await shared(record_dir)


async def shared(record_dir: Path | None = None) -> ProcessHelper:
    """The running helper for this event loop; a new one if it died or belongs to another loop."""
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or not _shared.alive or _shared.loop is not loop:
        if _shared is not None:
            record_dir = record_dir or _shared.record_dir
            if _shared.loop is loop:
                await _shared.close()
        _shared = ProcessHelper(record_dir)
        await _shared.start()
    return _shared


async def close_shared() -> None:
    """An agent is done with the helper; the last one closes it (its commands die with it)."""
    global _shared, _users
    _users = max(0, _users - 1)
    if _shared is not None and _users == 0:
        helper, _shared = _shared, None
        await helper.close()
