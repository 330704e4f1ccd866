"""Background processes: re-launch detached, pid files, stop and status.

Daemonizing re-launches the program with a new session instead of forking:
forking after grpc is imported breaks its threads and channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sloth_core import paths
from sloth_core.errors import SlothError

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


def pid_file(kind: str) -> Path:
    return paths.ensure_private_dir(paths.state_root()) / f"{kind}.pid"


def log_file(kind: str) -> Path:
    return paths.ensure_private_dir(paths.log_root()) / f"{kind}.log"


def read_pid(path: Path) -> int | None:
    """The live sloth-runner process named by a pid file, if any.

    A pid file left by a crash may name a pid since reused by an unrelated
    process: only one whose command line is ours counts.
    """
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and _is_ours(pid) else None


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the pid file
    return b"sloth_core" in cmdline or b"sloth-runner" in cmdline


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if so.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def write_pid(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def remove_pid(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()


def launch(kind: str, argv: list[str], what: str) -> int:
    """Re-run this command detached; return once it is up (pid file written) or failed."""
    pidf, logf = pid_file(kind), log_file(kind)
    running = read_pid(pidf)
    if running:
        raise SlothError(f"{what} is already running (pid {running}); stop it first")
    with contextlib.suppress(FileNotFoundError):
        pidf.unlink()
    args = [a for a in argv if a != "--daemon"] + ["--pid-file", str(pidf)]
    # The log holds every command the master ran: owner only, even if an older version made it wider.
    fd = os.open(logf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sloth_core.cli", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SlothError(f"{what} failed to start: {_last_error(logf, offset)} (log: {logf})")
        if read_pid(pidf) == proc.pid:
            print(f"{what} started in the background (pid {proc.pid}); log: {logf}")
            return 0
        time.sleep(0.05)
    raise SlothError(f"{what} did not come up within {START_TIMEOUT_S:.0f} s (log: {logf})")


def _last_error(logf: Path, offset: int) -> str:
    try:
        with open(logf, "rb") as f:
            f.seek(offset)
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "see the log"
    for line in reversed(lines):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return lines[-1].strip() if lines else "see the log"


def status(kind: str, what: str) -> int:
    pid = read_pid(pid_file(kind))
    if pid is None:
        print(f"{what} is not running")
        return 3  # as `systemctl status` / LSB for "not running"
    print(f"{what} is running (pid {pid}); log: {log_file(kind)}")
    return 0


def stop(kind: str, what: str) -> int:
    pidf = pid_file(kind)
    pid = read_pid(pidf)
    if pid is None:
        raise SlothError(f"{what} is not running (no live pid in {pidf})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid):
        if time.monotonic() > deadline:
            raise SlothError(f"{what} (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        pidf.unlink()
    print(f"{what} stopped")
    return 0


def serve_until_signalled(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    started: Callable[[], Awaitable[None]],
    pid_path: Path,
    stopping: asyncio.Event | None = None,
) -> None:
    """Run a server in the foreground until SIGTERM/SIGINT (or ``stopping``).

    The pid file is written only once the server is up, which is what a
    daemon's parent waits for.
    """

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
            write_pid(pid_path)
            await done.wait()
        finally:
            await stop()
            remove_pid(pid_path)

    asyncio.run(main())
