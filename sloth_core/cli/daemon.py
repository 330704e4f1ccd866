"""Background processes: re-launch detached, pid files, stop and status.

Daemonizing re-launches the program with a new session instead of forking:
forking after grpc is imported breaks its threads and channels.

A pid file is *locked* (``flock``) by its process for the whole of its life,
foreground or daemon: a second start fails at once instead of racing the
first, and the lock vanishes with the process (even while it is an unreaped
zombie), so `stop` and `status` never trust a stale pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from sloth_core import paths
from sloth_core.errors import SlothError

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02


def pid_file(kind: str) -> Path:
    return paths.ensure_private_dir(paths.state_root()) / f"{kind}.pid"


def log_file(kind: str) -> Path:
    return paths.ensure_private_dir(paths.log_root()) / f"{kind}.log"


def output_file(kind: str) -> Path:
    """Where a daemon's own stdout and stderr go (start-up errors, crashes); truncated at each start."""
    return paths.ensure_private_dir(paths.log_root()) / f"{kind}.out"


# ------------------------------------------------------------------ pid files


class PidLock:
    """The pid file of this process, locked until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, what: str) -> PidLock:
        """Lock ``path`` or raise: another live process holds it."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = read_pid(path)
                raise SlothError(
                    f"{what} is already running" + (f" (pid {pid})" if pid else "") + "; stop it first"
                ) from None
            # The holder before us may have removed the file between our open
            # and our lock: a lock on a file no longer at `path` locks nothing.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)

    def write_pid(self) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)


def is_locked(path: Path) -> bool:
    """Whether a live process holds the pid file at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops our shared lock, if we got it
    return False


def read_pid(path: Path) -> int | None:
    """The pid of the live process holding the pid file, once it has written it."""
    if not is_locked(path):
        return None
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None  # locked, but still starting


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# ------------------------------------------------------------------ starting


def launch(kind: str, argv: list[str], what: str, secret: str | None = None) -> int:
    """Re-run this command detached; return once it is up (pid file written) or failed.

    ``secret`` reaches the daemon through a pipe (see :func:`secret_pipe`), never
    its command line or environment.
    """
    pidf, logf, outf = pid_file(kind), log_file(kind), output_file(kind)
    if is_locked(pidf):
        running = read_pid(pidf)
        raise SlothError(f"{what} is already running" + (f" (pid {running})" if running else "") + "; stop it first")
    args = _daemon_argv(argv, pidf, logf)
    fd = os.open(outf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # start-up errors may quote a command line: owner only
    with open(fd, "wb") as out, secret_pipe(secret) as (secret_args, secret_fds):
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "sloth_core.cli", *args, *secret_args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, close_fds=True, pass_fds=secret_fds,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SlothError(f"{what} failed to start: {_last_error(outf, logf)} (log: {logf})")
        if read_pid(pidf) == proc.pid:
            print(f"{what} started in the background (pid {proc.pid}); log: {logf}")
            return 0
        time.sleep(POLL_S)
    raise SlothError(f"{what} did not come up within {START_TIMEOUT_S:.0f} s (log: {logf})")


SECRET_FD_FLAG = "--secret-fd"


@contextlib.contextmanager
def secret_pipe(secret: str | None) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """Arguments and fds that hand ``secret`` to a child through a pipe.

    Anything on a command line is world-readable in /proc/PID/cmdline, and
    the environment outlives its use in /proc/PID/environ; a pipe is read
    once by the child (:func:`read_secret`) and is gone.
    """
    if not secret:
        yield [], ()
        return
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, secret.encode())  # a token is far below the pipe's buffer
        os.close(write_end)
        write_end = -1
        yield [SECRET_FD_FLAG, str(read_end)], (read_end,)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def read_secret(fd: int | None) -> str | None:
    """The secret :func:`secret_pipe` handed to this process, if any."""
    if fd is None:
        return None
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode() or None


def _daemon_argv(argv: list[str], pidf: Path, logf: Path) -> list[str]:
    """The command line of the daemon: ours without --daemon, with its pid and log files."""
    return [a for a in argv if a != "--daemon"] + ["--pid-file", str(pidf), "--log-file", str(logf)]


def _last_error(*files: Path) -> str:
    for path in files:
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        for line in reversed(lines):
            if "error:" in line:
                return line.split("error:", 1)[1].strip()
        if lines:
            return lines[-1].strip()
    return "see the log"


# ------------------------------------------------------------------ stopping


def stop(kind: str, what: str, *, fallback_pid: int | None = None) -> int:
    """SIGTERM the process holding ``kind``'s pid file (or ``fallback_pid``); wait until it is gone."""
    pidf = pid_file(kind)
    pid = read_pid(pidf) or fallback_pid
    if pid is None or not alive(pid):
        raise SlothError(f"{what} is not running (no live process holds {pidf})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and (pid == fallback_pid or is_locked(pidf)):
        if time.monotonic() > deadline:
            raise SlothError(f"{what} (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)
    print(f"{what} stopped")
    return 0


# ------------------------------------------------------------------ serving


def serve_until_signalled(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    started: Callable[[], Awaitable[None]],
    pid_path: Path,
    stopping: asyncio.Event | None = None,
    what: str = "it",
) -> None:
    """Run a server in the foreground until SIGTERM/SIGINT (or ``stopping``).

    The pid file is locked before anything starts (a second copy fails at
    once) and its pid written only once the server is up, which is what a
    daemon's parent waits for.
    """
    lock = PidLock.acquire(pid_path, what)

    async def main() -> None:
        done = stopping or asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if done.is_set():
                os._exit(1)  # asked twice: stop waiting for a graceful shutdown
            done.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await start()
        try:
            await started()
            lock.write_pid()
            await done.wait()
        finally:
            await stop()

    try:
        asyncio.run(main())
    finally:
        lock.release()
