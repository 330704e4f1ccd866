"""What the operator sees is true, whatever the state and the terminal size (issue 11, items 9-12).

Each test is a user's story against the stand-in master, asserting what is on the screen.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual import events

from sloth_core import errors
from sloth_core.client import MasterClient
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.app import create_app
from sloth_tui.model import fmt
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.history import HistoryScreen, HistoryTable
from sloth_tui.widgets.output_log import OutputLog
from tests.tui.standin_master import StandinServer
from tests.tui.support import CLOCK, console, footer_text, screen_text, settle, shows, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

WIDE = (160, 45)
SMALL = (80, 24)


def job_runs(app):
    return {r.agent: r for r in app.store.job_runs(app.store.current_job)}


def job_finished(app) -> bool:
    return app.store.current_job is not None and not any(r.active for r in job_runs(app).values())


async def mark(pilot, *names: str) -> None:
    for name in names:
        assert pilot.app.fleet_screen.table.move_to(name)
        await pilot.press("space")


async def run(pilot, command: str) -> None:
    before = pilot.app.store.current_job
    await pilot.press("colon")
    pilot.app.fleet_screen.prompt.value = command
    await pilot.press("enter")
    await wait_for(pilot, lambda: pilot.app.store.current_job not in (None, before))


async def filter_by(pilot, text: str) -> None:
    await pilot.press("slash")
    pilot.app.fleet_screen.query_one("#filter").value = text
    await wait_for(pilot, lambda: pilot.app.fleet.filter.text == text)


# ---------------------------------------------------------------- 9. quitting


async def test_ctrl_c_quits_at_once_when_nothing_runs(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 0


async def test_ctrl_c_asks_like_q_while_runs_are_in_flight_even_while_typing(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "sleep 100")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").lines)
        await pilot.press("colon", "l", "s")  # typing a command
        await pilot.press("ctrl+c")
        await shows(pilot, "1 run started here still running")
        await pilot.press("ctrl+c")  # again: the same question, not a second dialog
        assert sum(isinstance(s, ConfirmScreen) for s in app.screen_stack) == 1
        await pilot.press("n")
        assert app.is_running
        await pilot.press("ctrl+c", "y")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 0


# ---------------------------------------------------------------- 10. telling the truth


async def test_an_empty_table_says_whether_the_filter_the_link_or_the_fleet_is_empty(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await filter_by(pilot, "no-such-agent")
        await shows(pilot, "No agent matches the filter “no-such-agent”. Esc clears it.")
        assert "No agents yet" not in screen_text(app)
        await pilot.press("escape")
        standin.command("clear")
        await shows(pilot, "No agents yet.")

    nobody = StandinServer()
    nobody.start()
    address = nobody.address
    nobody.stop()  # a port where no master listens
    app = console(address, reconnect_delays=(5.0,))
    async with app.run_test(size=WIDE) as pilot:
        await shows(pilot, f"Not connected to {address}: cannot reach the master at {address}")
        assert "No agents yet" not in screen_text(app)


async def test_while_disconnected_statuses_are_stale_and_the_countdown_counts(standin: StandinServer) -> None:
    start = time.monotonic()
    app = console(standin.address, reconnect_delays=(3.0,), clock=lambda: CLOCK + time.monotonic() - start)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.fleet_screen.table
        assert table.row_text("web-1")[2] == "● online"
        standin.stop()
        await shows(pilot, "retrying in 3s")
        assert table.row_text("web-1")[2] == "◌ online?"
        assert "● online" not in screen_text(app)
        seen = table.row_text("web-1")[6]
        await shows(pilot, "retrying in 2s", timeout=3)
        await shows(pilot, "statuses as of 1s ago", timeout=3)
        assert table.row_text("web-1")[6] == seen  # "Seen" does not grow while we hear nothing


async def test_credentials_that_cannot_work_end_the_console_with_the_clis_message(tmp_path: Path) -> None:
    with pytest.raises(errors.CredentialsError) as cli:
        MasterClient.connect("127.0.0.1:9", master_data_dir=tmp_path)  # what `agent list` would say
    app = create_app(
        lambda: MasterClient.connect("127.0.0.1:9", master_data_dir=tmp_path), reconnect_delays=(0.05,)
    )
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: not app.is_running, timeout=5)
    assert str(app.fatal_error) == str(cli.value)
    assert app.return_code == cli.value.exit_code == 1


async def test_the_delete_dialog_says_the_certificate_is_revoked_and_how_to_come_back(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("cache-1")
        await pilot.press("D")
        await shows(pilot, "Delete agent cache-1?")
        await shows(pilot, "revokes its certificate")
        assert isinstance(app.screen, ConfirmScreen)
        text = app.screen.body.plain  # the dialog's words, without its border between lines
        assert "revokes its certificate" in text
        assert "sloth-runner master token" in text and "--name cache-1 --token TOKEN" in text
        assert "can register again" not in text


async def test_a_pane_that_dropped_lines_says_how_many_and_where_they_are(standin: StandinServer) -> None:
    app = console(standin.address, max_lines=100)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "seq 1000")
        await wait_for(pilot, lambda: job_finished(app))
        run_ = app.store.for_agent("web-1")
        assert run_.lines[-1] == "1000" and run_.dropped_lines > 0
        await shows(pilot, f"{run_.dropped_lines:,} earlier lines not kept here")
        await shows(pilot, f"sloth-runner runs show {fmt.short_id(run_.run_id)}")


# ---------------------------------------------------------------- 11. targets you can see


async def test_marked_agents_hidden_by_the_filter_are_named_before_they_run(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "db-1")
        await filter_by(pilot, "web")
        await shows(pilot, "→ 2 marked (1 hidden by the filter): db-1, web-1")
        await shows(pilot, "2 marked (1 hidden by the filter)")  # the status bar too
        await pilot.press("enter", "colon")
        app.fleet_screen.prompt.value = "uptime"
        await pilot.press("enter")
        await shows(pilot, "1 of them hidden by the filter: db-1")
        assert app.store.current_job is None  # nothing ran before the operator agreed


async def test_re_running_a_job_on_several_agents_asks_first(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await mark(pilot, "web-1", "web-3")
        await run(pilot, "uptime")
        await wait_for(pilot, lambda: job_finished(app))
        first = app.store.current_job
        await pilot.press("R")
        await shows(pilot, "Re-run on 2 agents?")
        await pilot.press("n")
        assert app.store.current_job == first
        await pilot.press("R", "y")
        await wait_for(pilot, lambda: app.store.current_job != first)


async def test_a_multi_line_paste_keeps_the_first_line_and_says_so(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await pilot.press("colon")
        prompt = app.fleet_screen.prompt
        prompt.post_message(events.Paste("uptime\nrm -rf /tmp/x\n\ndf -h\n"))
        await wait_for(pilot, lambda: prompt.value == "uptime")
        await shows(pilot, "pasted 3 lines: the prompt runs one line, so it kept the first")


async def test_j_and_k_move_through_the_history_as_in_the_table(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.runs)
        table = app.screen.query_one(HistoryTable)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1


async def test_the_footer_offers_the_keys_of_the_focused_widget(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await wait_for(pilot, lambda: "/ Filter" in footer_text(app) and "q Quit" in footer_text(app))
        await pilot.press("colon")
        await wait_for(pilot, lambda: "Previous" in footer_text(app))
        footer = footer_text(app)
        assert "Filter" not in footer and "History" not in footer and "q Quit" not in footer
        assert "^c Quit" in footer and "esc Back" in footer
        await pilot.press("escape")
        await wait_for(pilot, lambda: "/ Filter" in footer_text(app))


async def test_a_cancelled_run_reads_the_same_in_the_pane_and_in_the_history(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "sleep 100")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").lines)
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: app.store.for_agent("web-1").status == pb.RUN_CANCELLED)
        await shows(pilot, "■ cancelled · signal 15 (SIGTERM)")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.runs)
        # The list row and the replayed run below it say the same words.
        await wait_for(pilot, lambda: screen_text(app).count("■ cancelled · signal 15 (SIGTERM)") == 2)
        assert "143" not in screen_text(app)


# ---------------------------------------------------------------- 12. any terminal size


async def test_80x24_keeps_what_matters_on_screen(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        screen = app.fleet_screen
        table = screen.table
        assert table.columns[:3] == ["mark", "name", "status"]
        assert "labels" not in table.columns and "address" not in table.columns
        assert screen.query_one("#fleet-side").outer_size.width <= 0.45 * SMALL[0] + 1
        await mark(pilot, "db-1", "web-1", "web-2", "web-3")
        await run(pilot, "apt-get upgrade -y")
        await wait_for(pilot, lambda: len(job_runs(app)) == 4 and not job_runs(app)["db-1"].active)
        await shows(pilot, "4 marked")
        text = screen_text(app)
        footer = text.splitlines()[-1]
        for key in ("c Cancel", "q Quit", "? Help"):
            assert key in footer, footer
        # The job summary wraps between its items, never inside one.
        summary = screen.query_one("#summary")
        assert summary.region.height >= 2
        for item in ("→ 4 agents", "✔ 1 succeeded", "✘ 1 failed", "⊘ 0 rejected"):
            assert item in text, item


async def test_long_lines_wrap_by_default_and_w_scrolls_them_instead(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "lines 3")  # 3 lines of ~70 characters, wider than the pane
        await wait_for(pilot, lambda: job_finished(app))
        log = app.fleet_screen.query_one(OutputLog)
        assert log.wrap and log.virtual_size.height > 3
        await shows(pilot, "agent=curl/8.5")  # the end of a long line is on screen
        await pilot.press("w")
        await wait_for(pilot, lambda: not log.wrap and log.virtual_size.height == 3)
        await wait_for(pilot, lambda: "agent=curl/8.5" not in screen_text(app))
        await pilot.press("w")
        await wait_for(pilot, lambda: log.wrap)
        await shows(pilot, "agent=curl/8.5")


async def test_wrapped_rows_stay_exact_while_the_buffer_drops_its_head(standin: StandinServer) -> None:
    app = console(standin.address, max_lines=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.fleet_screen.table.move_to("web-1")
        await run(pilot, "lines 2000")  # long lines in several chunks, most of them dropped from the head
        await wait_for(pilot, lambda: job_finished(app))
        log = app.fleet_screen.query_one(OutputLog)
        run_ = app.store.for_agent("web-1")
        width = log.scrollable_content_region.width

        def rows() -> int:
            return sum(max(1, -(-len(line) // width)) for line in run_.lines)

        assert run_.dropped_lines > 0
        await wait_for(pilot, lambda: log.virtual_size.height == rows())
        await shows(pilot, "002000 GET /api/v1/items/46 200")


async def test_the_status_bar_says_when_the_master_is_not_saving_history(standin: StandinServer) -> None:
    app = console(standin.address)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        standin.command("store", "failing", "disk", "full")
        await shows(pilot, "⚠ history is not being saved: disk full")
        standin.command("store", "ok")
        await wait_for(pilot, lambda: "not being saved" not in screen_text(app))
