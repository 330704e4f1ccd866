"""`sloth-runner demo`: a throwaway master and local agents, then the console.

Everything runs as real processes (the same `sloth-runner master` and
`agent start` an operator would use) in a temporary home that is removed on
exit, with security on: the agents find the local master's join token.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sloth_core.cli import daemon
from sloth_core.endpoint import read_endpoint
from sloth_core.errors import SlothError
from sloth_core.names import DEFAULT_MASTER_PORT

READY_TIMEOUT_S = 30.0
ROLES = ["web", "web", "db", "cache", "web", "batch"]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DemoFailed(SlothError):
    """The demo could not come up; the message carries the real cause."""


def _wait(what: str, check: Callable[[], object], procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    from sloth_core.harness import wait_for

    def ready() -> object:
        if check():
            return True
        for proc, log in procs:
            if proc.poll() is not None:
                raise DemoFailed(f"the demo's {what} exited early: {_cause(log)}")
        return False

    try:
        wait_for(ready, READY_TIMEOUT_S, what, interval=0.05)
    except TimeoutError:
        raise DemoFailed(f"the demo's {what} did not come up within {READY_TIMEOUT_S:.0f} s") from None


def _cause(log: Path) -> str:
    """The line of a process's log that says why it stopped."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if "error:" in line.lower() or "ERROR" in line:
            return line.split("error:", 1)[-1].strip()
    return lines[-1] if lines else "it printed nothing"


def _choose_port(requested: int) -> tuple[int, str]:
    """The master's port, and what to tell the user about it."""
    if requested:
        return requested, ""
    if _free(DEFAULT_MASTER_PORT) and _free(DEFAULT_MASTER_PORT + 1):
        return DEFAULT_MASTER_PORT, ""
    return 0, f"port {DEFAULT_MASTER_PORT} or {DEFAULT_MASTER_PORT + 1} is busy; the demo's master takes free ports"


def demo(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="sloth-demo-"))
    env = {**os.environ, "SLOTH_RUNNER_HOME": str(home)}
    env.pop("SLOTH_RUNNER_MASTER", None)
    logs = home / "log"
    logs.mkdir(parents=True)
    port, port_note = _choose_port(args.port)
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    exe = [sys.executable, "-P", "-m", "sloth_core.cli"]
    keep_logs = False

    def spawn(argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(logs / log_name, "wb") as log:
            proc = subprocess.Popen([*exe, *argv], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        procs.append((proc, logs / log_name))
        return proc

    master_dir = home / "master"
    try:
        spawn(["master", "--bind", "127.0.0.1", "--port", str(port), "--heartbeat-interval", "2"], "master.log")
        _wait("master", lambda: read_endpoint(master_dir), procs)
        endpoint = read_endpoint(master_dir)
        assert endpoint is not None
        port = endpoint.port
        master = f"127.0.0.1:{port}"
        if port_note:
            print(f"{port_note}: {port} (agents join on {endpoint.join_port})", flush=True)
        names = [f"demo-{i + 1}" for i in range(args.agents)]
        for i, name in enumerate(names):
            spawn(
                ["agent", "start", "--name", name, "--master", master, "--port", "0",
                 "--bind-address", "127.0.0.1", "--label", f"role={ROLES[i % len(ROLES)]}"],
                f"{name}.log",
            )
        for name in names:
            pid_file = home / "run" / f"agent-{name}.pid"
            _wait(f"agent {name}", lambda pid_file=pid_file: daemon.read_pid(pid_file), procs)
        print(
            f"sloth-runner demo: a master on {master} and {len(names)} agents ({', '.join(names)}).\n"
            "From another terminal, try:\n"
            f"  export SLOTH_RUNNER_HOME={home} SLOTH_RUNNER_MASTER={master}\n"
            "  sloth-runner agent list\n"
            f"  sloth-runner agent run {names[0]} 'uname -a; echo hello from $HOSTNAME'\n"
            "  sloth-runner agent run --all 'echo hi; exit $((RANDOM % 2))'\n"
            f"  sloth-runner agent shell {names[0]}\n"
            "  sloth-runner runs list\n"
            "  sloth-runner tui\n",
            flush=True,
        )
        if not args.no_console and sys.stdin.isatty() and sys.stdout.isatty():
            os.environ.update({"SLOTH_RUNNER_HOME": str(home), "SLOTH_RUNNER_MASTER": master})
            from sloth_tui.app import main as console

            return console(master, None, False)
        print("Press Ctrl-C to stop the demo.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            _wait_forever(procs)
        return 0
    except DemoFailed as exc:
        keep_logs = True
        raise DemoFailed(f"{exc} (logs kept in {logs})") from None
    finally:
        for proc, _ in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not keep_logs:
            shutil.rmtree(home, ignore_errors=True)


def _wait_forever(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Until Ctrl-C, or until the master dies (then there is nothing left to show)."""
    master, log = procs[0]
    master.wait()
    raise DemoFailed(f"the demo's master exited: {_cause(log)}")
