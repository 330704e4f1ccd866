"""`sloth-runner tui` without a terminal: a clear message and exit 2, not a console spinning on nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tui.standin_master import ROOT

pytestmark = pytest.mark.timeout(30)


def test_without_a_terminal_the_console_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOTH_RUNNER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sloth_core.cli", "tui", "--master", "127.0.0.1:9"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: the console needs a terminal, and stdin is not one")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_unusable_credentials_end_the_console_with_the_clis_own_line(tmp_path: Path) -> None:
    """On a real terminal with no admin credentials: the error `agent list` prints, and its exit code."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOTH_RUNNER_HOME": str(tmp_path), "TERM": "xterm-256color"}
    env.pop("SLOTH_RUNNER_CREDENTIALS", None)
    command = [sys.executable, "-m", "sloth_core.cli"]
    cli = subprocess.run([*command, "agent", "list", "--master", "127.0.0.1:9"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert cli.returncode == 1 and cli.stderr.startswith("error: ")

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([*command, "tui", "--master", "127.0.0.1:9"], stdin=follower, stdout=follower,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    os.close(follower)

    def drain() -> None:  # the screen Textual draws, read so that it never blocks
        try:
            while os.read(leader, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert proc.returncode == cli.returncode
    # Textual draws on stderr; the error comes after it left the alternate screen, as one line.
    screen, _, after = stderr.decode().rpartition("\x1b[?1049l")
    assert screen and after.endswith(cli.stderr) and after.count("\n") == 1
