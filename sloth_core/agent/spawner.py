"""The agent's process helper: starts every command and kills them all when the agent dies.

A small single-threaded process that the agent starts once (see
:mod:`sloth_core.agent.processes`). It holds one end of a ``SOCK_SEQPACKET``
socket pair whose other end only the agent holds, so however the agent dies
(SIGKILL included) the kernel closes that end and this process sees EOF. It
then kills every process group it started (TERM, a short grace, KILL) and
exits. ``PR_SET_PDEATHSIG`` is a second line: it is safe here because this
process is single-threaded (in the threaded agent it would fire when the
forking *thread* exits).

Each command runs in its own session (so its own process group) through
``posix_spawn``; its stdout/stderr pipes (and a stdin pipe when the caller
sends input) go back to the agent over the socket (``SCM_RIGHTS``), its exit
status follows when it is reaped. A command under a pseudo-terminal (``agent
shell``) is forked instead: the child makes the terminal its controlling one
(setsid, TIOCSCTTY) before exec, which posix_spawn cannot do; forking is
safe here because this process is single-threaded. Its master side goes back
to the agent as the one descriptor. This process is
a child subreaper, so a command's background children are reparented here and
reaped too, and a child that left its group (``setsid``) is still found.

Every group is recorded as a file ``<pgid>-<start time>`` (start time: field
22 of ``/proc/PID/stat``) holding the boot id, in a directory of the agent's
data dir. A helper starting up kills what an earlier one recorded and left
behind, and the start time keeps a reused pid from making it kill a stranger.

Run as ``python -S -E spawner.py SOCKET_FD AGENT_PID [RECORD_DIR]``; it imports
nothing but the standard library (no grpc, no sloth_core) to stay small.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import select
import signal
import socket
import struct
import sys
import termios
import time

MAX_MESSAGE = 256 * 1024
TERM_GRACE_S = 1.0  # TERM, then KILL: well within the 5 s a dead agent's commands may outlive it
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+), spelled out for any 3.x
STDIN_PIPE_BYTES = 1024 * 1024

# Requests (agent -> helper) and replies (helper -> agent), marshalled tuples.
# (SPAWN, id, argv, extra_env, cwd, options) -> (STARTED, id, pid) + fds, or (FAILED, id, message).
# options: {} -> fds stdout, stderr (stdin is /dev/null); {"stdin": True} -> stdout, stderr, stdin;
# {"pty": (rows, cols), "file": path} -> the terminal's master side (argv[0] may be "-bash").
SPAWN = "spawn"
SIGNAL = "signal"  # (SIGNAL, pgid, signo): only groups this helper started and still tracks
# (SIGNAL_SESSION, sid, signo): every process of the session a tracked group leads. A terminal
# session's shell puts each job in a group of its own; ending the session must reach them all.
SIGNAL_SESSION = "signal-session"
READY = "ready"  # (READY, swept): sent once, after leftovers of earlier instances are gone
STARTED = "started"
FAILED = "failed"
EXITED = "exited"  # (EXITED, pid, wait status)

# What a command starts with, as subprocess's restore_signals gives it: this
# process ignores SIGINT and SIGHUP and Python ignores SIGPIPE and SIGXFSZ,
# and ignored signals survive exec (`yes | head -1` would complain of a
# broken pipe, and Ctrl-C would not stop `sleep` in a shell).
DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ)


def proc_stat(pid: int) -> tuple[bool, int, int, int] | None:
    """(running, ppid, pgrp, start time in clock ticks since boot) of a process, else None.

    ``running`` is False for a zombie: it runs nothing and holds nothing.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return fields[0] not in (b"Z", b"X"), int(fields[1]), int(fields[2]), int(fields[19])


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()  # the command name may hold spaces and ')'


def session_members(sid: int) -> list[int]:
    """Every live process of session ``sid``, whatever its group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] not in (b"Z", b"X") and int(fields[3]) == sid:
                members.append(int(entry))
    return members


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def group_members(pgid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live process in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []  # the common case, without reading all of /proc
    except PermissionError:
        pass
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[0] and stat[2] == pgid:
                members.append((int(entry), stat[3]))
    return members


class Records:
    """One file per process group started, so a later helper can finish the job."""

    def __init__(self, directory: str | None) -> None:
        self.dir = directory
        self.boot = boot_id()
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def add(self, pgid: int, start: int) -> None:
        if self.dir:
            path = os.path.join(self.dir, f"{pgid}-{start}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, self.boot.encode())
            finally:
                os.close(fd)

    def remove(self, pgid: int, start: int) -> None:
        if self.dir:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, f"{pgid}-{start}"))

    def leftovers(self) -> list[tuple[int, int]]:
        """Groups an earlier instance recorded that still hold processes of ours."""
        if not self.dir:
            return []
        found = []
        for name in os.listdir(self.dir):
            pgid_text, _, start_text = name.partition("-")
            path = os.path.join(self.dir, name)
            try:
                pgid, start = int(pgid_text), int(start_text)
                with open(path) as f:
                    recorded_boot = f.read().strip()
            except (ValueError, OSError):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            # Start times count from boot: after a reboot the record means nothing.
            ours = recorded_boot == self.boot and _still_ours(pgid, start)
            if ours:
                found.append((pgid, start))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return found


def _still_ours(pgid: int, start: int) -> bool:
    """Whether group ``pgid`` is still the one started at ``start``.

    While a group has members its id cannot be given to a new process, so a
    process with that pid but another start time means ours ended and the
    number was reused. Members started before ours cannot be ours either.
    """
    leader = proc_stat(pgid)
    if leader is not None and leader[3] != start:
        return False
    members = group_members(pgid)
    return bool(members) and all(member_start >= start for _, member_start in members)


def kill_groups(groups: dict[int, int], reap: object = None, grace_s: float = TERM_GRACE_S) -> None:
    """TERM every group, wait up to ``grace_s`` for them to empty, then KILL what is left."""
    for pgid in groups:
        _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = dict(groups)
    while alive and time.monotonic() < deadline:
        if callable(reap):
            reap()
        alive = {g: s for g, s in alive.items() if group_members(g)}
        if alive:
            time.sleep(0.02)
    for pgid in alive:
        _killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s  # KILL is delivered asynchronously
    while alive and time.monotonic() < deadline:
        if callable(reap):
            reap()
        alive = {g: s for g, s in alive.items() if group_members(g)}
        if alive:
            time.sleep(0.01)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Helper:
    def __init__(self, sock: socket.socket, agent_pid: int, records: Records) -> None:
        self.sock = sock
        self.agent_pid = agent_pid
        self.records = records
        self.groups: dict[int, int] = {}  # pgid -> start time, while the group has members
        self.leaders: set[int] = set()  # pids whose exit the agent waits for
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.base_env = dict(os.environ)
        self.home = os.open(".", os.O_RDONLY)  # where commands start without --cwd
        self.moved = False
        self.agent_gone = False

    # -- the agent's requests ------------------------------------------------

    def handle(self, message: tuple) -> None:  # type: ignore[type-arg]
        if message[0] == SPAWN:
            _, ident, argv, extra_env, cwd = message[:5]
            options = message[5] if len(message) > 5 else {}
            if "pty" in options:
                rows, cols = options["pty"]
                self.spawn_pty(ident, options["file"], argv, extra_env, cwd, rows, cols)
            else:
                self.spawn(ident, argv, extra_env, cwd, stdin=bool(options.get("stdin")))
        elif message[0] == SIGNAL:
            _, pgid, signo = message
            if pgid in self.groups:
                _killpg(pgid, signo)
        elif message[0] == SIGNAL_SESSION:
            _, sid, signo = message
            if sid in self.groups:
                _killpg(sid, signo)
                for pid in session_members(sid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signo)

    def spawn(self, ident: int, argv: list[str], extra_env: dict[str, str], cwd: str = "", stdin: bool = False) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin else (self.devnull, -1)
        if stdin:
            with contextlib.suppress(OSError):  # fewer stalls feeding a fast reader (best effort)
                fcntl.fcntl(in_w, F_SETPIPE_SZ, STDIN_PIPE_BYTES)
        try:
            env = {**self.base_env, **extra_env} if extra_env else self.base_env
            # posix_spawn has no cwd: the child inherits ours, and this helper
            # is single-threaded, so changing it around the spawn is safe.
            if cwd:
                os.chdir(cwd)
                self.moved = True
            elif self.moved:
                os.fchdir(self.home)  # the agent's own directory, even if renamed since
                self.moved = False
            pid = os.posix_spawnp(
                argv[0], argv, env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, in_r, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setsid=True,  # its own session and process group, killed as one
                setsigdef=DEFAULT_SIGNALS,
            )
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w, *((in_r, in_w) if stdin else ())):
                os.close(fd)
            self.send((FAILED, ident, str(exc)))
            return
        os.close(out_w)
        os.close(err_w)
        if stdin:
            os.close(in_r)
        self.started(ident, pid, [out_r, err_r, in_w] if stdin else [out_r, err_r])

    def spawn_pty(
        self, ident: int, file: str, argv: list[str], extra_env: dict[str, str], cwd: str, rows: int, cols: int
    ) -> None:
        """Fork ``file`` under a new pseudo-terminal: its session leader, the terminal its controlling one."""
        env = {**self.base_env, **extra_env}
        try:
            master, slave = os.openpty()
        except OSError as exc:
            self.send((FAILED, ident, f"cannot open a pseudo-terminal: {exc}"))
            return
        # Written by the child only if exec fails; exec closes it (close-on-exec) otherwise.
        report_r, report_w = os.pipe()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            pid = os.fork()
        except OSError as exc:
            for fd in (master, slave, report_r, report_w):
                os.close(fd)
            self.send((FAILED, ident, str(exc)))
            return
        if pid == 0:  # the child: only plain system calls until exec
            try:
                os.close(master)
                os.close(report_r)
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(slave, fd)
                if slave > 2:
                    os.close(slave)
                signal.set_wakeup_fd(-1)
                for signo in (*DEFAULT_SIGNALS, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(signo, signal.SIG_DFL)
                if cwd:
                    os.chdir(cwd)
                os.execve(file, argv, env)
            except BaseException as exc:  # the child must never return into the helper
                with contextlib.suppress(BaseException):
                    os.write(report_w, f"cannot start {file}: {exc}".encode())
            os._exit(127)
        os.close(slave)
        os.close(report_w)
        failure = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(report_r, 4096):
                failure += chunk
        os.close(report_r)
        if failure:
            os.close(master)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.send((FAILED, ident, failure.decode(errors="replace")))
            return
        self.started(ident, pid, [master])

    def started(self, ident: int, pid: int, fds: list[int]) -> None:
        """Record ``pid``'s group and hand ``fds`` to the agent (closing ours)."""
        stat = proc_stat(pid)  # it cannot be reaped before we read it: we are its parent
        start = stat[3] if stat is not None else 0
        self.groups[pid] = start
        self.leaders.add(pid)
        self.records.add(pid, start)
        try:
            self.send((STARTED, ident, pid), fds)
        finally:
            for fd in fds:
                os.close(fd)

    def send(self, message: tuple, fds: list[int] | None = None) -> None:  # type: ignore[type-arg]
        data = marshal.dumps(message)
        try:
            if fds:
                self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _int_array(fds))])
            else:
                self.sock.send(data)
        except OSError:
            # EPIPE: the agent is gone. Sends block (the agent's queue holds
            # only a few messages) so that a busy agent slows us, never loses
            # a reply.
            self.agent_gone = True

    # -- children --------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.leaders:
                self.leaders.discard(pid)
                if not self.agent_gone:
                    self.send((EXITED, pid, status))
        self.forget_empty_groups()

    def forget_empty_groups(self) -> None:
        for pgid, start in list(self.groups.items()):
            if pgid not in self.leaders and not group_members(pgid):
                del self.groups[pgid]
                self.records.remove(pgid, start)

    def kill_everything(self) -> None:
        """The agent is gone: nothing it started may outlive it."""
        kill_groups(self.groups, reap=self.reap)
        # Descendants that left their group (setsid) were reparented to us;
        # jobs of a terminal session's shell sit in groups of their own, in its session.
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat_fields(int(entry))
                if fields is None or fields[0] in (b"Z", b"X"):
                    continue
                if int(fields[1]) == me or int(fields[3]) in self.groups:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(entry), signal.SIGKILL)
        self.reap()
        for pgid, start in list(self.groups.items()):
            if not group_members(pgid):
                self.records.remove(pgid, start)

    # -- the loop --------------------------------------------------------------

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)  # PDEATHSIG; looked at below
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the agent, which then closes our pipe
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        while not self.agent_gone:
            # While groups outlive their leader (background children), look
            # for them to empty now and then.
            timeout = 1000 if len(self.groups) > len(self.leaders) else None
            for fd, _ in poller.poll(timeout):
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    self.reap()
                    if os.getppid() != self.agent_pid:
                        self.agent_gone = True
                elif fd == self.sock.fileno():
                    self.read_requests()
            if timeout is not None:
                self.forget_empty_groups()
        self.kill_everything()

    def read_requests(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.agent_gone = True
                return
            self.handle(marshal.loads(data))


def _int_array(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def _set_death_signal() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    # Passed to us inheritable: no command may hold (and speak on) our end.
    sock.set_inheritable(False)
    agent_pid = int(argv[2])
    records = Records(argv[3] if len(argv) > 3 else None)
    _set_death_signal()
    if os.getppid() != agent_pid:
        return 0  # the agent died before we could watch it
    leftovers = dict(records.leftovers())
    if leftovers:
        kill_groups(leftovers)
    helper = Helper(sock, agent_pid, records)
    helper.groups.update(leftovers)  # dropped from the records once empty
    helper.forget_empty_groups()
    helper.send((READY, sorted(leftovers)))
    helper.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
