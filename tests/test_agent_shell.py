"""`sloth-runner agent shell`, driven through a pseudo-terminal as a person would, against a real master and agent."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from sloth_core.harness import wait_for
from sloth_core.security.credentials import write_admin_bundle
from tests.fleet import EXE, Fleet, agent_tls
from tests.pty_session import PtyProcess

pytestmark = pytest.mark.timeout(90)

PROMPT = re.compile(rb"[$#] ")
TERM = "xterm-256color"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A master and agent web-1, shared by the tests that leave both as they found them."""
    fleet = Fleet(home=tmp_path_factory.mktemp("shell") / "home")
    fleet.home.mkdir()
    try:
        fleet.start_master()
        fleet.start_agent("web-1")
        yield fleet
    finally:
        fleet.close()


def shell(fleet: Fleet, *args: str, rows: int = 24, cols: int = 80) -> PtyProcess:
    return PtyProcess([*EXE, "agent", "shell", *args], dict(fleet.env, TERM=TERM), rows=rows, cols=cols)


def started(session: PtyProcess) -> tuple[int, int]:
    """Wait for the remote prompt; start a background job; (the shell's pid, the job's pid)."""
    session.expect(PROMPT)
    session.type('sleep 300 & echo "pids=$$,$!"\r')
    found = session.expect(re.compile(rb"pids=(\d+),(\d+)"))
    return int(found[1]), int(found[2])


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2 :].startswith(b"Z")


def until_shows(session: PtyProcess, command: str, pattern: bytes, tries: int = 20) -> None:
    """Type ``command`` until its output shows ``pattern`` (a resize travels apart from the keys)."""
    for _ in range(tries):
        mark = len(session.output)
        session.type(command + "\r")
        try:
            session.expect(re.compile(re.escape(pattern)), 1.0, since=mark)
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{pattern!r} never showed: {bytes(session.output[-500:])!r}")


def runs(fleet: Fleet) -> list[dict[str, object]]:
    result = fleet.cli("runs", "list", "--agent", "web-1", "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_what_is_typed_runs_remotely_and_the_exit_code_comes_back(web: Fleet) -> None:
    with shell(web, "web-1") as session:
        session.expect(PROMPT)
        session.type("echo $((6*7)); exit 3\r")
        assert session.wait() == 3
        assert re.search(rb"\r42\r\n", session.output), bytes(session.output)
        assert session.settings() == session.cooked  # raw no more

    latest = runs(web)[0]
    assert (latest["kind"], latest["command"], latest["status"], latest["exit_code"]) == ("shell", "", "failed", 3)
    assert latest["stdout_bytes"] and not web.cli("runs", "show", str(latest["run_id"]), "--raw").stdout  # not stored
    table = web.cli("runs", "list", "--agent", "web-1").stdout.decode().splitlines()
    assert table[0].split()[-1] == "COMMAND"
    assert table[1].split()[3:5] == ["failed", "3"] and table[1].endswith(" shell (login)"), table[1]


def test_ctrl_c_and_ctrl_d_are_keys_for_the_remote_side(web: Fleet) -> None:
    with shell(web, "web-1") as session:
        session.expect(PROMPT)
        # The marker is printed by the foreground child itself, which then becomes the sleep: once it shows, the
        # child owns the terminal. Printed by bash before it forked, a ^C could land between the echo and the
        # sleep taking the terminal, and the sleep ran on (a flake in CI).
        session.type("sh -c 'echo started-$((2+3)); exec sleep 100'; echo after-$((1+1))\r")
        session.expect(b"started-5\r\n")  # printed by the command, not the echo of what was typed
        session.type(b"\x03")  # interrupts the remote sleep, not us
        mark = len(session.output)
        session.expect(PROMPT, since=mark)
        assert session.proc.poll() is None
        session.type(b"\x04")  # end of input for the remote shell: it logs out
        assert session.wait() == 130  # bash leaves with its last command's status: the interrupted sleep's
    assert b"after-2" not in session.output


def test_the_window_size_and_term_reach_the_remote_terminal_and_follow_a_resize(web: Fleet) -> None:
    with shell(web, "web-1", rows=30, cols=100) as session:
        session.expect(PROMPT)
        until_shows(session, "echo $TERM; stty size", f"{TERM}\r\n30 100".encode())
        session.resize(50, 132)
        until_shows(session, "stty size", b"50 132")
        session.type("exit\r")
        assert session.wait() == 0


def test_a_command_after_dashes_runs_interactively_instead_of_a_login_shell(web: Fleet) -> None:
    with shell(web, "web-1", "--", "sh", "-c", "stty size; read line; echo got-$line; exit 7", rows=33, cols=91) as session:
        session.expect(b"33 91")
        session.type("abc\r")
        session.expect(b"got-abc")
        assert session.wait() == 7
    latest = runs(web)[0]
    assert latest["kind"] == "shell" and latest["exit_code"] == 7
    assert "shell: sh -c 'stty size; read line" in web.cli("runs", "list", "--agent", "web-1").stdout.decode()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_client_ends_the_remote_shell_and_its_jobs(web: Fleet, sig: int) -> None:
    with shell(web, "web-1") as session:
        pids = started(session)
        session.proc.send_signal(sig)
        code = session.wait()
        wait_for(lambda: all(gone(p) for p in pids), 15, what="the remote shell and its job to end")
        if sig == signal.SIGTERM:
            assert code == 128 + signal.SIGTERM
            assert session.settings() == session.cooked  # the terminal was restored before leaving
            assert b"error: the session on web-1 ended: sloth-runner received SIGTERM" in session.output
    wait_for(lambda: runs(web)[0]["status"] != "running", 15, what="the run to be recorded as over")


def test_runs_cancel_ends_the_session_with_255_and_the_reason(web: Fleet) -> None:
    with shell(web, "web-1") as session:
        pids = started(session)
        run = next(r for r in runs(web) if r["status"] == "running" and r["kind"] == "shell")
        result = web.cli("runs", "cancel", str(run["run_id"]))
        assert result.returncode == 0, result.stderr.decode()
        assert session.wait() == 255
        assert b"error: the session on web-1 was cancelled" in session.output
        assert session.settings() == session.cooked
        wait_for(lambda: all(gone(p) for p in pids), 15, what="the remote shell and its job to end")


def test_without_a_terminal_it_points_to_agent_run(web: Fleet) -> None:
    result = web.cli("agent", "shell", "web-1", input=b"echo hi\n")
    assert result.returncode == 2
    assert b"agent shell needs a terminal on stdin" in result.stderr and b"agent run" in result.stderr
    assert result.stdout == b""


def test_an_unknown_agent_is_255_with_the_reason(web: Fleet) -> None:
    with shell(web, "nope-1") as session:
        assert session.wait() == 255
        assert b"error: " in session.output and b"nope-1" in session.output
        assert session.settings() == session.cooked


def test_only_admins_open_shells(web: Fleet, tmp_path: Path) -> None:
    bundle = tmp_path / "agent-as-admin.json"
    write_admin_bundle(bundle, agent_tls(web, "web-1"), "agent:web-1")
    with shell(web, "web-1", "--credentials", str(bundle)) as session:
        assert session.wait() == 1
        assert b"error: only an admin may do this; the caller is agent:web-1" in session.output
        assert session.settings() == session.cooked


def test_a_lost_agent_ends_the_session_with_255_and_a_restored_terminal(fleet: Fleet) -> None:
    fleet.start_master()
    agent = fleet.start_agent("web-1")
    with shell(fleet, "web-1") as session:
        session.expect(PROMPT)
        os.killpg(agent.pid, signal.SIGKILL)  # the agent and its shell, as a machine that dies
        assert session.wait() == 255
        assert b"error: " in session.output
        assert session.settings() == session.cooked


def test_a_master_that_goes_away_ends_the_session_with_255(fleet: Fleet) -> None:
    master = fleet.start_master()
    fleet.start_agent("web-1")
    with shell(fleet, "web-1") as session:
        pids = started(session)
        master.kill(signal.SIGKILL)
        assert session.wait() == 255
        assert b"error: lost the connection to the master" in session.output
        assert session.settings() == session.cooked
        # The agent does not keep a session nobody can reach (its master link is gone).
        wait_for(lambda: all(gone(p) for p in pids), 30, what="the agent to end the orphaned shell")


def test_agent_shell_stays_light(web: Fleet) -> None:
    """Like `agent run`, `agent shell` loads neither the console (Textual, rich) nor cryptography."""
    import sys

    argv = [sys.executable, "-X", "importtime", "-m", "sloth_core.cli", "agent", "shell", "web-1", "--", "true"]
    with PtyProcess(argv, dict(web.env, TERM=TERM)) as session:
        assert session.wait() == 0
    lines = bytes(session.output).decode(errors="replace").splitlines()
    imported = {line.split("|")[-1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    assert "grpc" in imported
    assert not imported & {"textual", "rich", "cryptography", "sloth_tui"}, imported & {"textual", "rich", "cryptography"}
