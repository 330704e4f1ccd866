"""The console driven by keys, against the stand-in master (the real gRPC protocol)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.style import Style
from textual.command import CommandPalette

from sloth_core.proto import sloth_pb2 as pb
from sloth_tui import keymap
from sloth_tui.model.runs import STDERR
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.help import HelpScreen, help_table
from sloth_tui.screens.history import HistoryScreen
from sloth_tui.widgets.output_log import OutputLog
from tests.tui.standin_master import StandinServer
from tests.tui.support import console, screen_text, settle, shows, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

SIZE = (150, 40)


def job_runs(app):
    return {r.agent: r for r in app.store.job_runs(app.store.current_job)}


def job_finished(app) -> bool:
    return app.store.current_job is not None and not any(r.active for r in job_runs(app).values())


async def mark(pilot, *names: str) -> None:
    for name in names:
        assert pilot.app.fleet_screen.table.move_to(name)
        await pilot.press("space")


async def type_command(pilot, command: str) -> None:
    """Focus the prompt and fill it in (Pilot takes ~50 ms a key; typing is tested once)."""
    await pilot.press("colon")
    pilot.app.fleet_screen.prompt.value = command


async def run(pilot, command: str) -> None:
    before = pilot.app.store.current_job
    await type_command(pilot, command)
    await pilot.press("enter")
    await wait_for(pilot, lambda: pilot.app.store.current_job not in (None, before))


async def test_table_shows_the_fleet_and_follows_its_changes(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.fleet_screen.table
        assert table.order == ["batch-1", "cache-1", "db-1", "db-2", "web-1", "web-2", "web-3"]
        await shows(pilot, "7 agents (5 online, 1 offline, 1 stopped)")
        assert "● connected" in screen_text(app)

        standin.command("status", "web-2", "offline")
        standin.command("add", "web-4", "10.0.1.14:50051", "role=web")
        await wait_for(pilot, lambda: "web-4" in table.order and app.fleet.agents["web-2"].status == "offline")
        assert table.row_text("web-2")[2] == "● offline"
        await shows(pilot, "8 agents (5 online, 2 offline, 1 stopped)")


async def test_marks_choose_the_targets_shown_by_the_prompt(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.fleet_screen
        screen.table.move_to("web-1")
        await pilot.pause()
        await shows(pilot, "→ web-1")
        await mark(pilot, "web-1", "web-2", "db-1")
        assert screen.targets() == ["db-1", "web-1", "web-2"]
        await shows(pilot, "→ 3 marked: db-1, web-1, web-2")
        await pilot.press("space")  # marking db-1 moved the cursor on to db-2
        assert app.fleet.marks == {"db-1", "db-2", "web-1", "web-2"}
        await pilot.press("u")
        assert app.fleet.marks == set()
        await pilot.press("a")
        assert app.fleet.marks == set(app.fleet.agents)


async def test_running_on_two_agents_shows_both_outputs_and_the_summary(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "web-3")
        await run(pilot, "uptime")
        await wait_for(pilot, lambda: job_finished(app))
        runs = job_runs(app)
        assert set(runs) == {"web-1", "web-3"}
        for name, r in runs.items():
            assert r.status == pb.RUN_SUCCEEDED
            assert r.lines == [f" 15:06:41 up 12 days,  3:04,  0 users,  load average: 0.08, 0.03, 0.01  [{name}]"]
        await shows(pilot, "✔ 2 succeeded")
        assert "✘ 0 failed" in screen_text(app)
        # Each agent has its own pane: the cursor picks which one is shown.
        screen = app.fleet_screen
        for name in ("web-3", "web-1"):
            screen.table.move_to(name)
            await pilot.pause()
            assert screen.pane.run is runs[name]
            await shows(pilot, f"{name}  ✔ succeeded · exit 0")


async def test_a_failure_shows_its_exit_code_and_stderr_in_red(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "web-2", "web-3", "db-2")
        await run(pilot, "./deploy.sh")
        await wait_for(pilot, lambda: job_finished(app))
        await pilot.press("n")
        screen = app.fleet_screen
        assert screen.shown_agent == "web-2"
        await shows(pilot, "web-2  ✘ failed · exit 3")
        text = screen_text(app)
        assert "web-2  ✘ failed · exit 3" in text
        assert "error: rolling back to v2.4.0" in text
        assert "✔ 2 succeeded  ✘ 1 failed  ⊘ 1 rejected" in text
        # stderr lines are kept apart and painted in the stderr colour.
        run_ = screen.pane.run
        assert run_ is not None
        err = [i for i, kind in enumerate(run_.kinds) if kind == STDERR]
        assert [run_.lines[i] for i in err][-1] == "error: rolling back to v2.4.0"
        log = screen.pane.log_view
        stderr_colour = log.get_component_rich_style("output-log--stderr").color
        row = err[-1] - log.scroll_offset.y
        styles = {seg.style.color for seg in log.render_line(row) if seg.style and seg.text.strip()}
        assert styles == {stderr_colour}
        assert next(iter(log.render_line(0))).style != Style(color=stderr_colour)
        # The rejected agent says why.
        await pilot.press("n")  # only one failure: stays on web-2
        assert screen.shown_agent == "web-2"
        screen.table.move_to("db-2")
        await pilot.pause()
        await shows(pilot, "⊘ rejected")
        await shows(pilot, "agent db-2 is offline")


async def test_untrusted_text_is_shown_literally(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "colours")
        await wait_for(pilot, lambda: job_finished(app))
        await run(pilot, "echo [b]x[/b]")
        await wait_for(pilot, lambda: job_finished(app))
        assert app.store.for_agent("web-1").lines == ["ran: echo [b]x[/b]"]
        await shows(pilot, "$ echo [b]x[/b]")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and len(app.screen.runs) == 6)
        await pilot.press("down")
        await wait_for(pilot, lambda: app.screen.pane.run is not None and app.screen.pane.run.command == "colours"
                       and len(app.screen.pane.run.lines) == 2)
        await shows(pilot, "red plain [bold]not markup[/]")
        text = screen_text(app)
        assert "echo [b]x[/b]" in text  # in the history list, not read as markup
        assert "red plain [bold]not markup[/]" in text  # escape sequences removed, brackets kept
        assert "bad \ufffd byte" in text
        assert "\x1b" not in text and "pwned" not in text


async def test_cancel_asks_then_stops_the_run(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "sleep 100")
        await wait_for(pilot, lambda: (r := app.store.for_agent("web-1")) is not None and r.lines)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await shows(pilot, "sleep 100")
        await pilot.press("n")
        assert app.store.for_agent("web-1").active
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").status == pb.RUN_CANCELLED)
        await shows(pilot, "■ cancelled · signal 15")


async def test_cancel_the_whole_job(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "web-2")
        await run(pilot, "tail -f /var/log/syslog")
        await wait_for(pilot, lambda: all(r.lines for r in job_runs(app).values()))
        await pilot.press("C")
        await shows(pilot, "2 runs still in flight")
        await pilot.press("y")
        await wait_for(pilot, lambda: job_finished(app))
        assert {r.status for r in job_runs(app).values()} == {pb.RUN_CANCELLED}


async def test_history_lists_past_runs_replays_and_reruns(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.runs)
        history = app.screen
        assert [i.command for i in history.runs.values()] == ["./deploy.sh", "", "systemctl restart nginx", "uptime"]
        await wait_for(pilot, lambda: history.pane.run is not None and history.pane.run.lines)
        assert history.pane.run.lines[-1] == "deployed v2.4.1"
        await pilot.press("down")  # a terminal session: named, and nothing of its screen to replay
        await wait_for(pilot, lambda: history.pane.run.command == "shell (login)")
        await shows(pilot, "a terminal session (agent shell): what was typed and shown is not recorded")
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: history.pane.run.command == "uptime" and history.pane.run.lines)
        await shows(pilot, "uptime")
        await pilot.press("enter")  # replays again, into the focused pane
        await wait_for(pilot, lambda: isinstance(app.focused, OutputLog) and history.pane.run.lines)
        await pilot.press("escape")  # back to the list
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen is app.fleet_screen and app.store.current_job is not None)
        await wait_for(pilot, lambda: job_finished(app))
        assert app.store.for_agent("web-1").command == "uptime"


async def test_filter_and_sort_keep_the_cursor_on_the_same_agent(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.fleet_screen.table
        table.move_to("web-2")
        await pilot.press("slash")
        app.fleet_screen.query_one("#filter").value = "label:zone=eu-2"
        await wait_for(pilot, lambda: table.order == ["batch-1", "db-2", "web-2"])
        assert table.cursor_agent == "web-2"
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.focused is table
        await pilot.press("S")
        assert table.order == ["web-2", "db-2", "batch-1"]
        assert table.cursor_agent == "web-2"
        await pilot.press("S")  # again: reversed
        assert table.order == ["batch-1", "db-2", "web-2"]
        assert table.cursor_agent == "web-2"
        await shows(pilot, "Status ▼")
        await pilot.press("escape")  # clears the filter
        assert len(table.order) == 7 and table.cursor_agent == "web-2"
        await pilot.press("slash", *"status:offline")
        await wait_for(pilot, lambda: table.order == ["db-2"])
        assert table.cursor_agent == "db-2"


async def test_prompt_history_survives_a_restart(standin: StandinServer, tmp_path: Path) -> None:
    path = tmp_path / "history"
    app = console(standin.address, history_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "uptime")
        await run(pilot, "./deploy.sh")
    assert path.read_text() == "uptime\n./deploy.sh\n"
    app = console(standin.address, history_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("colon", "up")
        assert app.fleet_screen.prompt.value == "./deploy.sh"
        await pilot.press("up")
        assert app.fleet_screen.prompt.value == "uptime"
        await pilot.press("down", "down")
        assert app.fleet_screen.prompt.value == ""


async def test_many_targets_ask_for_confirmation(standin: StandinServer) -> None:
    app = console(standin.address, confirm_over=2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "web-2", "web-3")
        await pilot.press("colon", *"uptime", "enter")  # typed for real, once
        await shows(pilot, "Run on 3 agents?")
        text = screen_text(app)
        assert "uptime" in text and "web-1, web-2, web-3" in text
        await pilot.press("escape")
        assert app.store.current_job is None
        await pilot.press("colon", "enter")  # the command is still there
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: job_finished(app))
        assert len(job_runs(app)) == 3


async def test_stop_and_delete_an_agent_after_confirmation(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.fleet_screen.table
        table.move_to("cache-1")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.fleet.agents["cache-1"].status == "stopped")
        await pilot.press("D")
        await shows(pilot, "Delete agent cache-1?")
        await pilot.press("y")
        await wait_for(pilot, lambda: "cache-1" not in table.order)
        assert table.cursor_agent is not None


async def test_the_master_going_away_and_coming_back(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = standin.port
        standin.stop()
        await wait_for(pilot, lambda: app.connection.state == "disconnected")
        await shows(pilot, "✘ disconnected")
        text = screen_text(app)
        assert "✘ disconnected" in text and "retrying in" in text
        assert "web-1" in text  # what was on screen stays there
        assert app.fleet_screen.table.has_class("-stale")
        standin.start(port)
        await wait_for(pilot, lambda: app.connection.state == "connected", timeout=15)
        await shows(pilot, "● connected")
        assert not app.fleet_screen.table.has_class("-stale")


async def test_quit_asks_while_runs_are_in_flight(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "sleep 100")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").lines)
        await pilot.press("q")
        await shows(pilot, "1 run started here still running")
        await pilot.press("n")
        assert app.is_running
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 0


async def test_help_and_palette_are_generated_from_the_keymap(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await shows(pilot, "Agent table  (here now)")
        console_ = Console(width=120, record=True, file=io.StringIO())
        console_.print(help_table(app.screen.active_contexts))
        text = console_.export_text()
        for spec in keymap.KEYMAP:
            assert spec.description in text, spec.id
        assert text.index("Agent table  (here now)") < text.index("Main screen  (here now)") < text.index("Output pane")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("ctrl+p")
        # Type only once the palette's input has focus, or keys land elsewhere.
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen.focused is not None)
        await pilot.press(*"sort by stat")
        await shows(pilot, "Sort by status")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.fleet.sort_column == "status")


async def test_pane_follows_until_scrolled_up(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        screen = app.fleet_screen
        screen.table.move_to("web-1")
        await run(pilot, "ticker 400")  # a line every 10 ms for 4 s
        await wait_for(pilot, lambda: len(app.store.for_agent("web-1").lines) > 30)
        log = screen.query_one(OutputLog)
        await wait_for(pilot, lambda: log.is_vertical_scroll_end and log.scroll_offset.y > 0)
        assert log.follow
        log.focus()
        await pilot.press("pageup")
        assert not log.follow
        seen = log.scroll_offset.y
        await wait_for(pilot, lambda: log.unseen > 10)
        assert log.scroll_offset.y == seen  # new lines do not move what the operator reads
        await wait_for(pilot, lambda: "new lines below" in screen_text(app))
        await pilot.press("f")
        assert log.follow and log.is_vertical_scroll_end
        await wait_for(pilot, lambda: "⏸ paused" not in screen_text(app))
        await pilot.press("home")
        assert not log.follow and log.scroll_offset.y == 0
        await pilot.press("end")
        assert log.follow and log.is_vertical_scroll_end


async def test_a_bug_in_a_screen_update_is_reported_not_swallowed(standin: StandinServer, monkeypatch) -> None:
    from sloth_tui.screens.fleet import FleetScreen

    def broken(self, changes) -> None:
        raise RuntimeError("a bug in a screen update")

    monkeypatch.setattr(FleetScreen, "fleet_changed", broken)
    app = console(standin.address)
    with pytest.raises(RuntimeError, match="a bug in a screen update"):
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: not app.is_running)
