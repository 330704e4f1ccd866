"""``s``: the console hands its terminal to `agent shell` and comes back to the screen it left.

Headless (the stand-in master; a stand-in `sloth-runner` records how it was
called; Textual's headless driver cannot suspend, so the suspension is
recorded instead), and for real: the console itself on a pseudo-terminal,
a real master and agent, a real remote shell.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sloth_tui.app import SlothApp
from sloth_tui.shell import ShellLauncher
from tests.fleet import EXE, Fleet
from tests.pty_session import PtyProcess
from tests.tui import screenshots
from tests.tui.standin_master import StandinServer
from tests.tui.support import screen_text, wait_for

pytestmark = pytest.mark.timeout(60)

FAKE_SHELL = str(Path(__file__).with_name("fake_shell.py"))
PROMPT = re.compile(rb"[$#] ")


class Recorder:
    """What the console did around the shell: suspensions, and what it said afterwards."""

    def __init__(self, app: SlothApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.suspended = 0
        self.notes: list[tuple[str, str, str]] = []
        original_notify = app.notify

        @contextlib.contextmanager
        def suspend() -> Iterator[None]:
            self.suspended += 1
            yield

        def notify(message: str, *, title: str = "", severity: str = "information", **kw: Any) -> None:
            self.notes.append((title, message, severity))
            original_notify(message, title=title, severity=severity, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(app, "suspend", suspend)
        monkeypatch.setattr(app, "notify", notify)


@pytest.fixture
def fake_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "fake-shell.jsonl"
    monkeypatch.setenv("FAKE_SHELL_LOG", str(log))
    return log


def launcher(standin: StandinServer) -> ShellLauncher:
    return ShellLauncher(standin.address, insecure=True, program=(sys.executable, FAKE_SHELL))


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_s_runs_agent_shell_on_the_same_master_and_returns_to_the_same_screen(
    standin: StandinServer, fake_shell: Path, monkeypatch: pytest.MonkeyPatch, utc: None
) -> None:
    app = screenshots.build_app(standin.address, shell=launcher(standin))
    recorder = Recorder(app, monkeypatch)
    sigint = signal.getsignal(signal.SIGINT)
    async with app.run_test(size=screenshots.WIDE) as pilot:
        await screenshots.fleet_overview(pilot)  # web-1's last run in the pane
        before = screen_text(app)
        assert "s Shell" in before.splitlines()[-1]  # the footer offers it

        await pilot.press("s")
        await wait_for(pilot, lambda: recorder.notes)
        assert recorder.suspended == 1
        assert calls(fake_shell) == [
            {"argv": ["agent", "shell", "--master", standin.address, "--insecure", "web-1"], "stdin_is_terminal": False}
        ]
        assert recorder.notes == [("Shell on web-1", "The session ended.", "information")]
        await pilot.pause(0.1)
        assert screen_text(app) == before  # same screen, same row, same pane
        assert app.fleet_screen.table.cursor_agent == "web-1"
        assert signal.getsignal(signal.SIGINT) is sigint  # shielded from Ctrl-C only while the shell ran


async def test_why_the_shell_could_not_start_is_shown_when_the_console_is_back(
    standin: StandinServer, fake_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SHELL_EXIT", "1")
    monkeypatch.setenv("FAKE_SHELL_SAYS", "error: only an admin may do this; the caller is agent:web-1\n")
    app = screenshots.build_app(standin.address, shell=launcher(standin))
    recorder = Recorder(app, monkeypatch)
    async with app.run_test(size=screenshots.WIDE) as pilot:
        await screenshots.settle(pilot)
        app.fleet_screen.table.move_to("web-2")
        await pilot.press("s")
        await wait_for(pilot, lambda: recorder.notes)
    assert recorder.notes == [
        ("Shell on web-2", "error: only an admin may do this; the caller is agent:web-1", "error")
    ]


async def test_the_remote_shells_own_exit_code_is_said(
    standin: StandinServer, fake_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SHELL_EXIT", "3")
    app = screenshots.build_app(standin.address, shell=launcher(standin))
    recorder = Recorder(app, monkeypatch)
    async with app.run_test(size=screenshots.WIDE) as pilot:
        await screenshots.settle(pilot)
        app.fleet_screen.table.move_to("web-3")
        await pilot.press("s")
        await wait_for(pilot, lambda: recorder.notes)
    assert recorder.notes == [("Shell on web-3", "The session ended with exit 3.", "information")]


@pytest.mark.parametrize(("agent", "status"), [("db-2", "offline"), ("batch-1", "stopped")])
async def test_an_agent_that_is_not_online_is_said_at_once(
    standin: StandinServer, fake_shell: Path, monkeypatch: pytest.MonkeyPatch, agent: str, status: str
) -> None:
    app = screenshots.build_app(standin.address, shell=launcher(standin))
    recorder = Recorder(app, monkeypatch)
    async with app.run_test(size=screenshots.WIDE) as pilot:
        await screenshots.settle(pilot)
        app.fleet_screen.table.move_to(agent)
        await pilot.press("s")
        await wait_for(pilot, lambda: recorder.notes)
    assert recorder.notes == [("Shell", f"{agent} is {status}.", "warning")]
    assert recorder.suspended == 0 and not calls(fake_shell)


async def test_r_on_a_shell_in_the_history_opens_it_again(
    standin: StandinServer, fake_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sloth_tui.screens.history import HistoryScreen

    app = screenshots.build_app(standin.address, shell=launcher(standin))
    recorder = Recorder(app, monkeypatch)
    async with app.run_test(size=screenshots.WIDE) as pilot:
        await screenshots.settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.runs)
        await pilot.press("down", "r")  # the second newest: the login shell
        await wait_for(pilot, lambda: recorder.notes)
        assert app.screen is app.fleet_screen and app.store.current_job is None  # a shell, not a job
    assert [c["argv"][-1] for c in calls(fake_shell)] == ["web-1"]


def test_a_recorded_session_reopens_with_its_command() -> None:
    shell = ShellLauncher("10.0.0.2:50053", credentials="ops.json", program=("sloth-runner",))
    assert shell.argv("web-1", "top -d 1") == [
        "sloth-runner", "agent", "shell", "--master", "10.0.0.2:50053", "--credentials", "ops.json",
        "web-1", "--", "top", "-d", "1",
    ]
    assert shell.argv("web-1", "echo 'unclosed")[-4:] == ["--", "sh", "-c", "echo 'unclosed"]


# ---------------------------------------------------------------- for real


@pytest.fixture
def web(fleet: Fleet) -> Fleet:
    fleet.start_master()
    fleet.start_agent("web-1")
    return fleet


def test_a_real_console_hands_over_its_terminal_and_takes_it_back(web: Fleet) -> None:
    with PtyProcess([*EXE, "tui"], dict(web.env, TERM="xterm-256color"), rows=30, cols=120) as console:
        console.expect(b"web-1")
        console.expect(b"online")
        mark = len(console.output)
        console.type("s")
        left = console.expect(b"\x1b[?1049l", since=mark)  # the console left the alternate screen
        console.expect(PROMPT, since=left.end())  # the remote login shell's prompt
        console.type("echo $((6*7)); exit 3\r")
        answer = console.expect(re.compile(rb"\r42\r\n"), since=left.end())
        back = console.expect(b"\x1b[?1049h", since=answer.end())  # the console is back
        console.expect(b"exit 3", since=back.end())  # and says how the session ended

        mark = len(console.output)
        console.type("h")  # the session is in web-1's history
        console.expect(b"what was typed and shown is not recorded", since=mark)
        mark = len(console.output)
        console.type("\x1b")
        console.expect(b" Mark", since=mark)  # the main screen's footer: ESC and q apart, or they read as alt+q
        console.type("q")
        assert console.wait() == 0
    runs = json.loads(web.cli("runs", "list", "--agent", "web-1", "--json").stdout)
    assert [(r["kind"], r["exit_code"], r["requested_by"]) for r in runs] == [("shell", 3, "admin:local")]

