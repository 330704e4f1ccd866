"""`agent shell` (issue 14): how a terminal session feels.

Real processes: a master, agent a1, and the real `sloth-runner agent shell a1`
on a pseudo-terminal (tests/pty_session.py), typed into as a person would:

- keystroke echo: on a warm session at the remote prompt, one character is
  typed and timed until its echo is back on our terminal (client -> master
  -> agent -> the remote PTY, where bash's readline echoes it -> back), then
  erased with a backspace (timed as well); many samples;
- start-up: from spawning the CLI to the first byte the remote side writes
  (the prompt's first bytes), then `exit`; the whole process each time.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from bench._infra import Cluster, Figure, Results, cli_argv, command_line, progress
from tests.pty_session import PtyProcess

ECHO_TARGET_MS = 5.0
FIRST_BYTE_TARGET_MS = 200.0
PROMPT = re.compile(rb"[$#] ")
ECHO_SAMPLES = {"full": 400, "quick": 100}
WARMUP_KEYS = 20


def _echo_ms(session: PtyProcess, key: bytes, expect: bytes, timeout: float = 5.0) -> float:
    """Type ``key``; milliseconds until ``expect`` has come back."""
    seen = b""
    started = time.perf_counter()
    os.write(session.master, key)
    deadline = started + timeout
    while expect not in seen:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RuntimeError(f"no echo of {key!r} within {timeout} s (got {seen!r})")
        ready, _, _ = select.select([session.master], [], [], left)
        if ready:
            seen += os.read(session.master, 65536)
    return (time.perf_counter() - started) * 1000


def echo_round_trips(cluster: Cluster, samples: int) -> list[float]:
    env = dict(cluster.env, TERM="xterm-256color")
    with PtyProcess([*cli_argv(), "agent", "shell", "a1", *cluster.flags], env) as session:
        session.expect(PROMPT, 30)
        times = []
        for i in range(WARMUP_KEYS + samples):
            typed = _echo_ms(session, b"x", b"x")
            erased = _echo_ms(session, b"\x7f", b"\x08")  # readline erases with backspace, space, backspace
            if i >= WARMUP_KEYS:
                times += [typed, erased]
        session.type("exit\r")
        if session.wait(30) != 0:
            raise RuntimeError(f"the shell did not exit cleanly: {bytes(session.output[-300:])!r}")
    return times


def first_bytes(cluster: Cluster, runs: int) -> list[float]:
    env = dict(cluster.env, TERM="xterm-256color")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with PtyProcess([*cli_argv(), "agent", "shell", "a1", *cluster.flags], env) as session:
            if not session.read_some(30):
                raise RuntimeError("no byte from the remote shell within 30 s")
            times.append((time.perf_counter() - started) * 1000)
            session.expect(PROMPT, 30)
            session.type("exit\r")
            if session.wait(30) != 0:
                raise RuntimeError(f"the shell did not exit cleanly: {bytes(session.output[-300:])!r}")
    return times


@contextlib.contextmanager
def plain_login_profile() -> Iterator[None]:
    """Agents started meanwhile log in with an empty ~/.profile (only /etc/profile and bash.bashrc run).

    The login shell's own start-up is the agent user's business: a profile
    that runs `pyenv init` (as root's on the reference machine) adds
    ≈ 350 ms to any login, ssh's included, and would hide ours.
    """
    saved = os.environ.get("HOME")
    with tempfile.TemporaryDirectory(prefix="sloth-bench-home-") as home:
        os.environ["HOME"] = home
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved


def run(profile: Any, results: Results) -> None:
    samples = ECHO_SAMPLES["quick" if profile.name.startswith("quick") else "full"]
    if "smallest" in profile.name:
        samples = 10
    argv = [*cli_argv(), "agent", "shell", "a1"]
    progress("shell: master + 1 agent process")
    with Cluster("shell", keep=profile.keep) as cluster, plain_login_profile():
        cluster.start_master()
        cluster.start_agents(["a1"])
        first_bytes(cluster, 1)  # warm-up: the master opens its channel to a1, the page cache fills

        progress(f"shell: {samples} keystrokes and their erasures echoed on a warm session")
        results.add(Figure(
            "shell_echo", "`agent shell` keystroke echo round trip (warm session)", "ms",
            echo_round_trips(cluster, samples), ECHO_TARGET_MS,
            command=command_line(argv) + " on a pseudo-terminal; type x, then backspace, at the bash prompt",
            note="from the key written to our terminal to its echo read back: client -> master -> agent PTY "
            "(bash readline echoes) -> back; security on",
        ))

        progress(f"shell: {profile.cli_runs} x start `agent shell a1` until the first byte of the prompt")
        results.add(Figure(
            "shell_first_byte", "`agent shell` start to the first byte of the remote prompt", "ms",
            first_bytes(cluster, profile.cli_runs), FIRST_BYTE_TARGET_MS,
            command=command_line(argv) + " on a pseudo-terminal",
            note="whole CLI process: spawn to the first byte the remote login shell writes; security on; "
            "the agent user's ~/.profile is empty (a login shell alone takes ≈ 10 ms then)",
        ))
