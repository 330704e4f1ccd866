"""The console against a real master and real agents on loopback (mutual TLS).

Each test is an operator's story; the processes are the real `sloth-runner`
programs started by ``tests.fleet`` in a temporary home.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sloth_core.client import MasterClient
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.app import SlothApp, create_app
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.history import HistoryScreen
from tests.fleet import Fleet
from tests.tui.support import screen_text, settle, shows, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

SIZE = (150, 40)


@pytest.fixture
def two_agents(tmp_path: Path) -> Iterator[Fleet]:
    """A secure master with agents web-1 and web-2 (label role=web)."""
    fleet = Fleet(home=tmp_path / "home")
    fleet.home.mkdir()
    try:
        fleet.start_master()
        for name in ("web-1", "web-2"):
            fleet.start_agent(name, "--label", "role=web", wait=False)
        for proc in fleet.procs[1:]:
            wait_for_log(proc, "registered with the master")
        yield fleet
    finally:
        fleet.close()


def wait_for_log(proc, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.text():
        assert proc.alive(), proc.text()
        assert time.monotonic() < deadline, f"{proc.name}: no {text!r} in {proc.text()}"
        time.sleep(0.02)


def console_on(fleet: Fleet, address: str | None = None) -> SlothApp:
    master = address or fleet.master_address
    return create_app(
        lambda: MasterClient.connect(master, master_data_dir=fleet.master_dir),
        reconnect_delays=(0.2, 0.5, 1.0),
        target=master,
    )


def job_runs(app: SlothApp) -> dict[str, object]:
    return {r.agent: r for r in app.store.job_runs(app.store.current_job)}


def job_finished(app: SlothApp) -> bool:
    return app.store.current_job is not None and not any(r.active for r in app.store.job_runs(app.store.current_job))


async def run(pilot, command: str, *marks: str) -> None:
    app: SlothApp = pilot.app
    screen = app.fleet_screen
    if marks:
        await pilot.press("u")
        for name in marks:
            assert screen.table.move_to(name)
            await pilot.press("space")
    before = app.store.current_job
    await pilot.press("colon")
    screen.prompt.value = command
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.store.current_job not in (None, before))


async def test_fleet_runs_failures_cancel_filter_and_an_agent_dying(two_agents: Fleet, tmp_path: Path) -> None:
    fleet = two_agents
    app = console_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=15)
        table = app.fleet_screen.table
        await wait_for(pilot, lambda: table.order == ["web-1", "web-2"])

        # An agent that registers appears, live.
        await asyncio.to_thread(fleet.start_agent, "db-1")
        await wait_for(pilot, lambda: "db-1" in table.order and app.fleet.agents["db-1"].status == "online")

        # Two marked agents: both outputs, each in its pane, and the summary.
        await run(pilot, "echo out-$((6*7)); echo to-stderr >&2", "web-1", "web-2")
        await wait_for(pilot, lambda: job_finished(app), timeout=15)
        runs = job_runs(app)
        assert set(runs) == {"web-1", "web-2"}
        for r in runs.values():
            assert r.status == pb.RUN_SUCCEEDED and "out-42" in r.lines and "to-stderr" in r.lines
        await shows(pilot, "✔ 2 succeeded")

        # A failure: its exit code and its stderr.
        await run(pilot, "echo bad news >&2; exit 7", "web-2")
        await wait_for(pilot, lambda: job_finished(app), timeout=15)
        await pilot.press("n")
        await shows(pilot, "web-2  ✘ failed · exit 7")
        text = screen_text(app)
        assert "bad news" in text and "✘ 1 failed" in text

        # Cancel kills the remote process.
        pid_file = tmp_path / "sleeper.pid"
        await run(pilot, f"echo $$ > {pid_file}; exec sleep 300", "web-1")
        await wait_for(pilot, lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=15)
        pid = int(pid_file.read_text())
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").status == pb.RUN_CANCELLED, timeout=15)
        await wait_for(pilot, lambda: not _alive(pid), timeout=10)

        # Filter and sort keep the cursor on the same agent.
        table.move_to("web-2")
        await pilot.press("slash")
        app.fleet_screen.query_one("#filter").value = "label:role=web"
        await wait_for(pilot, lambda: table.order == ["web-1", "web-2"])
        assert table.cursor_agent == "web-2"
        await pilot.press("enter", "N")
        assert table.order == ["web-2", "web-1"] and table.cursor_agent == "web-2"
        await pilot.press("escape")
        assert table.order == ["web-2", "web-1", "db-1"] and table.cursor_agent == "web-2"

        # An agent that dies is marked offline.
        fleet.procs[-1].kill()  # db-1, SIGKILL: no goodbye
        await wait_for(pilot, lambda: app.fleet.agents["db-1"].status == "offline", timeout=15)
        assert table.row_text("db-1")[2] == "● offline"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_history_and_a_master_restart_survive(two_agents: Fleet) -> None:
    fleet = two_agents
    app = console_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=15)
        await wait_for(pilot, lambda: len(app.fleet.agents) == 2)
        await run(pilot, "echo remembered; echo and-stderr >&2", "web-1")
        await wait_for(pilot, lambda: job_finished(app), timeout=15)

        # The master goes away: the console says so and keeps what it shows.
        master = fleet.procs[0]
        master.kill()
        await wait_for(pilot, lambda: app.connection.state == "disconnected", timeout=15)
        await shows(pilot, "✘ disconnected")
        text = screen_text(app)
        assert "✘ disconnected" in text and "web-1" in text and "remembered" in text
        assert "credentials" not in text.splitlines()[0]

        # ... and comes back on the same port with its data: the console reconnects.
        await asyncio.to_thread(fleet.start_master, port=fleet.master_port)
        await wait_for(pilot, lambda: app.connection.state == "connected", timeout=20)
        await wait_for(pilot, lambda: app.fleet.agents.get("web-1") is not None
                       and app.fleet.agents["web-1"].status == "online", timeout=20)
        await shows(pilot, "remembered")

    # A new console (a restart) finds the run in the master's history and replays it.
    app = console_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=15)
        app.fleet_screen.table.move_to("web-1")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.runs, timeout=15)
        history = app.screen
        assert next(iter(history.runs.values())).command == "echo remembered; echo and-stderr >&2"
        await wait_for(pilot, lambda: history.pane.run is not None and "remembered" in history.pane.run.lines)
        assert "and-stderr" in history.pane.run.lines
        await shows(pilot, "✔ succeeded · exit 0")


async def test_the_prompt_sends_env_and_cwd_and_the_table_shows_facts(two_agents: Fleet, tmp_path: Path) -> None:
    fleet = two_agents
    app = console_on(fleet)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot, timeout=15)
        table = app.fleet_screen.table
        await wait_for(pilot, lambda: table.order == ["web-1", "web-2"])
        # Real agents report real facts: MEM and DISK show percentages, not dashes.
        assert {"cpu", "mem", "disk"} <= set(table.columns)
        mem, disk = table.row_text("web-1")[-2:]
        assert mem.endswith("%") and disk.endswith("%")

        workdir = tmp_path / "work dir"
        workdir.mkdir()
        await run(pilot, f"--cwd '{workdir}' --env 'GREETING=hi there' echo \"$GREETING@$PWD\"", "web-1")
        await wait_for(pilot, lambda: job_finished(app), timeout=15)
        runs = job_runs(app)
        assert runs["web-1"].status == pb.RUN_SUCCEEDED
        assert f"hi there@{workdir}" in runs["web-1"].lines

        await run(pilot, "--cwd /no/such/dir pwd", "web-1")
        await wait_for(pilot, lambda: job_finished(app), timeout=15)
        await shows(pilot, "no such directory on web-1: /no/such/dir")


async def test_the_prompt_sends_a_local_file_as_stdin_and_R_reruns_with_every_option(
    two_agents: Fleet, tmp_path: Path
) -> None:
    import hashlib

    payload = os.urandom(300_000)  # several input chunks, not text
    data = tmp_path / "payload.bin"
    data.write_bytes(payload)
    app = console_on(two_agents)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=15)
        await pilot.press("a", "colon")  # both agents: the console asks first, naming the file
        app.fleet_screen.prompt.value = f"--stdin '{data}' --env TAG=first sh -c 'echo $TAG $(sha256sum)'"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await shows(pilot, "with TAG=first, stdin from")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.current_job is not None)
        await wait_for(pilot, lambda: job_finished(app), timeout=15)
        want = f"first {hashlib.sha256(payload).hexdigest()} -"
        first = app.store.current_job
        assert {a: (r.status, r.lines) for a, r in job_runs(app).items()} == {
            a: (pb.RUN_SUCCEEDED, [want]) for a in ("web-1", "web-2")
        }

        data.write_bytes(b"changed\n")  # a re-run reads the file again
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await shows(pilot, "with TAG=first, stdin from")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.current_job != first and job_finished(app), timeout=15)
        want = f"first {hashlib.sha256(b'changed' + bytes([10])).hexdigest()} -"
        assert [r.lines for r in job_runs(app).values()] == [[want], [want]]

        before = app.store.current_job
        await pilot.press("u", "colon")  # one agent: no question first
        app.fleet_screen.prompt.value = "--stdin /no/such/file cat"
        said: list[str] = []
        app.notify = lambda message, **kw: said.append(message)  # type: ignore[method-assign,assignment]
        await pilot.press("enter")
        await wait_for(pilot, lambda: said)
        assert said == ["--stdin: no such file: /no/such/file"]
        assert app.store.current_job == before  # nothing ran
