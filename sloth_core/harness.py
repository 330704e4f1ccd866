"""The harness that starts local sloth-runner processes, for the tests, the benchmarks and the demo.

It starts real `sloth-runner` processes and waits for them: each child runs
in its own session (a terminal's Ctrl-C reaches only us, and
:func:`stop` can take down everything it started), output goes to a log
file, and every wait is on a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sloth_core.endpoint import MasterEndpoint, read_endpoint

ENV_PREFIX = "SLOTH_RUNNER_"


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition", interval: float = 0.02) -> Any:
    """Call ``condition`` until it returns something true, and return that.

    Raises :class:`TimeoutError` naming ``what`` after ``timeout`` seconds;
    an exception from ``condition`` (a child that died) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_until(
    condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """:func:`wait_for` for asyncio code: the loop keeps running while it waits."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def isolated_env(home: Path, master: str = "") -> dict[str, str]:
    """This environment without the caller's sloth-runner settings, living in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({f"{ENV_PREFIX}HOME": str(home), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    if master:
        env[f"{ENV_PREFIX}MASTER"] = master
    return env


def spawn(argv: list[str], *, env: dict[str, str], log: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, its stdout and stderr appended to ``log``."""
    out: Any = subprocess.DEVNULL
    handle = None
    if log is not None:
        handle = open(log, "ab")  # the child keeps its own copy of the descriptor
        out = handle
    kwargs.setdefault("stdout", out)
    kwargs.setdefault("stderr", out)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    try:
        return subprocess.Popen(argv, env=env, start_new_session=True, **kwargs)
    finally:
        if handle is not None:
            handle.close()


def _signal_session(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process's session (it is its leader), then SIGKILL if it lingers."""
    if proc.poll() is None:
        _signal_session(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_session(proc, signal.SIGKILL)
            proc.wait(timeout=5)
    else:
        # The leader is gone; make sure nothing it started in its session lingers.
        _signal_session(proc, signal.SIGKILL)


def stop_many(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Stop several processes at once: signal all, then wait for each."""
    for proc in procs:
        if proc.poll() is None:
            _signal_session(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        stop(proc, timeout=0.1)


def log_tail(log: Path, chars: int = 2000) -> str:
    try:
        return log.read_bytes()[-chars:].decode(errors="replace")
    except OSError:
        return ""


def wait_for_master(proc: subprocess.Popen[bytes], data_dir: Path, log: Path, timeout: float = 30.0) -> MasterEndpoint:
    """Wait until the master started as ``proc`` listens; its ``master.json``.

    Remove an old ``master.json`` before starting the master.
    """

    def up() -> MasterEndpoint | None:
        if proc.poll() is not None:
            raise RuntimeError(f"the master exited: {log_tail(log)}")
        return read_endpoint(data_dir)

    endpoint: MasterEndpoint = wait_for(up, timeout, "the master to listen")
    return endpoint


def wait_for_log(
    proc: subprocess.Popen[bytes], log: Path, text: str, timeout: float, what: str, *, offset: int = 0
) -> None:
    """Wait until ``text`` appears in ``log`` after byte ``offset``, while ``proc`` lives."""

    def seen() -> bool:
        written = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
        if proc.poll() is not None and text not in written:
            raise RuntimeError(f"the process exited while waiting for {what}: {written[-2000:]}")
        return text in written

    wait_for(seen, timeout, what)
