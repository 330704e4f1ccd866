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


def _wait(what: str, check: Callable[[], object], procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    from sloth_core.harness import wait_for

    def ready() -> object:
        if check():
            return True
        if any(proc.poll() is not None for proc in procs):
            raise SlothError(f"the demo's {what} exited early; see the logs in {logs}")
        return False

    try:
        wait_for(ready, READY_TIMEOUT_S, what, interval=0.05)
    except TimeoutError:
        raise SlothError(f"the demo's {what} did not come up within {READY_TIMEOUT_S:.0f} s; logs in {logs}") from None


def demo(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="sloth-demo-"))
    env = {**os.environ, "SLOTH_RUNNER_HOME": str(home)}
    env.pop("SLOTH_RUNNER_MASTER", None)
    logs = home / "log"
    logs.mkdir(parents=True)
    port = args.port or (DEFAULT_MASTER_PORT if _free(DEFAULT_MASTER_PORT) and _free(DEFAULT_MASTER_PORT + 1) else 0)
    procs: list[subprocess.Popen[bytes]] = []
    exe = [sys.executable, "-m", "sloth_core.cli"]

    def spawn(argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(logs / log_name, "wb") as log:
            proc = subprocess.Popen([*exe, *argv], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        procs.append(proc)
        return proc

    master_dir = home / "master"
    try:
        spawn(["master", "--bind", "127.0.0.1", "--port", str(port), "--heartbeat-interval", "2"], "master.log")
        _wait("master", lambda: read_endpoint(master_dir), procs, logs)
        endpoint = read_endpoint(master_dir)
        assert endpoint is not None
        port = endpoint.port
        master = f"127.0.0.1:{port}"
        names = [f"demo-{i + 1}" for i in range(args.agents)]
        for i, name in enumerate(names):
            spawn(
                ["agent", "start", "--name", name, "--master", master, "--port", "0",
                 "--bind-address", "127.0.0.1", "--label", f"role={ROLES[i % len(ROLES)]}"],
                f"{name}.log",
            )
        for name in names:
            pid_file = home / "run" / f"agent-{name}.pid"
            _wait(f"agent {name}", pid_file.exists, procs, logs)
        print(
            f"sloth-runner demo: a master on {master} and {len(names)} agents ({', '.join(names)}).\n"
            "From another terminal, try:\n"
            f"  export SLOTH_RUNNER_HOME={home} SLOTH_RUNNER_MASTER={master}\n"
            "  sloth-runner agent list\n"
            f"  sloth-runner agent run {names[0]} 'uname -a; echo hello from $HOSTNAME'\n"
            "  sloth-runner agent run --all 'echo hi; exit $((RANDOM % 2))'\n"
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
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def _wait_forever(procs: list[subprocess.Popen[bytes]]) -> None:
    """Until Ctrl-C, or until the master dies (then there is nothing left to show)."""
    procs[0].wait()
    raise SlothError("the demo's master exited")
