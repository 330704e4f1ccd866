"""`agent run` composes like ssh: data on stdout, everything else on stderr.

Terminal behaviour (boxes and the live progress line only when stderr is a
terminal) is tested through a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time

import pytest

from tests.fleet import EXE, Fleet

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def two(fleet: Fleet) -> Fleet:
    fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    return fleet


def on_terminal(fleet: Fleet, *args: str, stdout_too: bool = False) -> tuple[int, bytes, bytes]:
    """Run the CLI with stderr (and maybe stdout) on a pseudo-terminal; return (code, stdout, terminal)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [*EXE, *args], env=fleet.env, stdin=subprocess.DEVNULL,
        stdout=child if stdout_too else subprocess.PIPE, stderr=child,
    )
    os.close(child)
    screen = bytearray()
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        screen.extend(chunk)
    if proc.stdout is not None:
        out = proc.stdout.read()
    os.close(main)
    return proc.wait(timeout=30), out, bytes(screen)


def test_only_the_remote_output_reaches_stdout(two: Fleet) -> None:
    piped = two.cli("agent", "run", "a1", "seq 3")
    assert piped.returncode == 0 and piped.stdout == b"1\n2\n3\n"  # `| wc -l` prints 3
    asked = two.cli("agent", "run", "a1", "seq 3; echo warn >&2", "--summary")
    assert asked.stdout == b"1\n2\n3\n"
    assert asked.stderr.startswith(b"warn\n") and "Command Execution Result on a1" in asked.stderr.decode()


def test_the_box_starts_on_a_fresh_line_and_shortens_a_long_command(two: Fleet) -> None:
    both = subprocess.run([*EXE, "agent", "run", "a1", "printf abc", "--summary"], env=two.env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert both.stdout.decode().startswith("abc\n╭─ Command Execution Result on a1")
    long_command = "echo " + "x" * 300 + "\necho second line"
    boxed = two.cli("agent", "run", "a1", long_command, "--summary", env={**two.env, "COLUMNS": "80"})
    lines = boxed.stderr.decode().splitlines()
    command_row = next(line for line in lines if "Command:" in line)
    assert "…" in command_row and "second line" not in boxed.stderr.decode()
    assert max(len(line) for line in lines) <= 80


def test_boxes_only_when_stderr_is_a_terminal(two: Fleet) -> None:
    plain = two.cli("agent", "run", "a1", "echo hi; exit 3")
    assert plain.returncode == 3 and plain.stdout == b"hi\n" and plain.stderr == b""  # as ssh: nothing added
    code, _, screen = on_terminal(two, "agent", "run", "a1", "printf abc", stdout_too=True)
    text = screen.decode()
    assert code == 0 and "abc\r\n╭─ Command Execution Result on a1" in text  # on a fresh line
    quiet_code, _, quiet = on_terminal(two, "agent", "run", "a1", "printf abc", "--quiet", stdout_too=True)
    assert quiet_code == 0 and quiet == b"abc"


def test_many_agents_prefixed_lines_on_stdout_table_and_count_on_stderr(two: Fleet) -> None:
    command = "echo out-$SLOTH_AGENT; echo err-$SLOTH_AGENT >&2; [ $SLOTH_AGENT = a2 ] && exit 7; true"
    result = two.cli("agent", "run", "a1,a2", command, "--summary")
    assert result.returncode == 1
    assert sorted(result.stdout.decode().splitlines()) == ["a1 | out-a1", "a2 | out-a2"]
    err = result.stderr.decode().splitlines()
    assert "a1 | err-a1" in err and "a2 | err-a2" in err
    assert "Command Execution Result" not in result.stderr.decode()  # one table, never a box per agent
    header = next(i for i, line in enumerate(err) if line.startswith("AGENT"))
    assert err[header].split() == ["AGENT", "STATUS", "EXIT", "DURATION", "ERROR"]
    a2 = next(line for line in err[header:] if line.startswith("a2 "))
    assert a2.split()[1:3] == ["failed", "7"] and a2.endswith("err-a2")  # the first error line
    assert err[-1] == "1 succeeded, 1 failed, 0 rejected"
    # Without a terminal and without --summary: no table, the count still last on stderr.
    plain = two.cli("agent", "run", "a1,a2", "true")
    assert plain.stderr.decode().splitlines() == ["2 succeeded, 0 failed, 0 rejected"]


def test_words_and_options_after_the_target(two: Fleet) -> None:
    result = two.cli("agent", "run", "a1", "--timeout", "20", "echo", "hello", "world")
    assert result.returncode == 0 and result.stdout == b"hello world\n", result.stderr
    dashed = two.cli("agent", "run", "a1", "--", "printf", "%s-", "-n")
    assert dashed.stdout == b"-n-"


def test_a_live_progress_line_on_a_terminal_only(two: Fleet) -> None:
    command = "sleep 1.2; echo done-$SLOTH_AGENT"
    code, out, screen = on_terminal(two, "agent", "run", "--all", command)
    text = screen.decode()
    assert code == 0
    assert sorted(out.decode().splitlines()) == ["a1 | done-a1", "a2 | done-a2"]  # stdout stays plain
    assert re.search(r"\r\x1b\[K\[0/2 done · [12] running · [^\]]* · slowest: a[12] ", text), text
    assert text.rstrip().endswith("2 succeeded, 0 failed, 0 rejected")
    assert "AGENT" in text  # the table, since stderr is a terminal
    # Redirected stderr (CI logs): no status line at all; --no-progress turns it off on a terminal.
    redirected = two.cli("agent", "run", "--all", command)
    assert b"\x1b[K" not in redirected.stderr and b"running" not in redirected.stderr
    _, _, off = on_terminal(two, "agent", "run", "--all", command, "--no-progress")
    assert b"\x1b[K" not in off and b"running" not in off
    forced = two.cli("agent", "run", "--all", "true", "--progress")
    assert b"\r\x1b[K[" in forced.stderr


def test_agent_run_stays_light(two: Fleet) -> None:
    """`agent run` loads neither the console (Textual, rich) nor cryptography nor Python's ssl."""
    import sys

    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "sloth_core.cli", "agent", "run", "a1", "echo hi"],
                            env=two.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b"hi\n"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "grpc" in imported
    assert not imported & {"textual", "rich", "cryptography", "sloth_tui"}, imported & {"textual", "rich", "cryptography"}
    # Nor Python's OpenSSL bindings: grpc has its own TLS (sloth_core/footprint.py). importtime also
    # lists the refused attempts at ssl; had ssl loaded, its _ssl would be listed too.
    assert "_ssl" not in imported


def test_master_and_agents_leave_openssl_unmapped(two: Fleet) -> None:
    """Python's ssl/_hashlib would map the system's libssl and libcrypto: 4.7 MB of an agent's RSS."""
    assert two.cli("agent", "run", "--all", "true").returncode == 0  # after a run, not only at start
    procs = [p for p in two.procs if p.name in ("master", "agent-a1", "agent-a2")]
    assert len(procs) == 3
    for proc in procs:
        with open(f"/proc/{proc.pid}/maps") as f:
            maps = f.read()
        assert "/libssl.so" not in maps and "/libcrypto.so" not in maps, proc.name
