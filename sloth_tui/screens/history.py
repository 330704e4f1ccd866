"""``h``: an agent's past runs, from the master's history; replay and re-run them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Static

from sloth_core import escape
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import RUN_ACTIVE, what_ran
from sloth_tui import keymap
from sloth_tui.messages import HistoryLoaded
from sloth_tui.model import fmt
from sloth_tui.model.runs import RunsChanged, RunView
from sloth_tui.widgets.keys_footer import KeysFooter
from sloth_tui.widgets.output_log import OutputLog
from sloth_tui.widgets.output_pane import OutputPane, run_badge

if TYPE_CHECKING:
    from sloth_tui.app import SlothApp

REPLAY_DELAY_S = 0.15
"""Moving through the list replays the run under the cursor once it rests this long."""


class HistoryTable(DataTable[object]):
    """Past runs of one agent, newest first, keyed by run id; j/k move as in the agent table."""

    BINDINGS = keymap.bindings("runs")


class HistoryScreen(Screen[None]):
    """Runs of one agent: the list on top, the selected run's output below."""

    BINDINGS = keymap.bindings("history")

    def __init__(self, agent: str) -> None:
        super().__init__()
        self.agent = agent
        self.runs: dict[str, pb.RunInfo] = {}
        self._replay_timer: Timer | None = None

    @property
    def sloth(self) -> SlothApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("History of ", "bold"), (self.agent, "bold magenta"), " — loading…"),
                     id="history-title")
        with Vertical(id="history-main"):
            yield HistoryTable(id="history-runs", cursor_type="row")
            yield OutputPane(id="history-pane")
        yield KeysFooter()

    def on_mount(self) -> None:
        app = self.sloth
        app.subscribe(app.runs_signal, self, self.runs_changed)
        app.subscribe(app.tick_signal, self, self.tick)
        app.subscribe(app.history_signal, self, self.history_loaded)
        table = self.query_one(HistoryTable)
        # The command comes early: on a narrow terminal it is what tells runs apart.
        table.add_column("Started", key="started")
        table.add_column("Status", key="status")
        table.add_column("Took", key="duration")
        table.add_column("Command", key="command")
        table.add_column("Run", key="run")
        table.add_column("By", key="by")
        table.focus()
        self.pane.show(None, self.sloth.now(), placeholder="")
        self.sloth.load_history(self.agent)

    @property
    def pane(self) -> OutputPane:
        return self.query_one(OutputPane)

    def active_contexts(self) -> list[str]:
        return ["pane" if isinstance(self.focused, OutputLog) else "runs", "history", "pane"]

    def palette_contexts(self) -> list[str]:
        return ["history", "pane"]

    # ------------------------------------------------------------ data

    def history_loaded(self, message: HistoryLoaded) -> None:
        if message.agent != self.agent or not self.is_attached:
            return
        title = self.query_one("#history-title", Static)
        if message.error:
            title.update(Text.assemble(("History of ", "bold"), (self.agent, "bold magenta"),
                                       (f" — {message.error}", "red")))
            return
        title.update(Text.assemble(
            ("History of ", "bold"), (self.agent, "bold magenta"),
            f" — {fmt.plural(len(message.runs), 'run')} (from the master)",
        ))
        table = self.query_one(HistoryTable)
        keep = self._cursor_run()
        table.clear()
        self.runs = {}
        now = self.sloth.now()
        for info in message.runs:
            self.runs[info.run_id] = info
            table.add_row(*self._cells(info, now), key=info.run_id)
        if keep and keep in self.runs:
            table.move_cursor(row=table.get_row_index(keep))
        if not message.runs:
            self.pane.show(None, now, placeholder=f"{self.agent} has no runs in the master's history.")
        else:
            self._schedule_replay()

    def _cells(self, info: pb.RunInfo, now: float) -> tuple[object, ...]:
        run = RunView(info)
        # Text, never str: a str cell is parsed as markup, and commands are anything.
        return (
            Text(fmt.short_time(info.started_at or info.created_at)),
            run_badge(run, bold=False),
            Text(fmt.duration(run.duration(now))),
            Text(escape.shown(what_ran(info.command, info.kind))),
            Text(fmt.short_id(info.run_id)),
            Text(escape.shown(info.requested_by) or "—"),
        )

    def _cursor_run(self) -> str | None:
        table = self.query_one(HistoryTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    # ------------------------------------------------------------ replay

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._schedule_replay()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table takes Enter for itself: it means "replay" here too.
        event.stop()
        self.action_replay()

    def _schedule_replay(self) -> None:
        if self._replay_timer is not None:
            self._replay_timer.stop()
        self._replay_timer = self.set_timer(REPLAY_DELAY_S, self._show_selected)

    def _show_selected(self, *, force: bool = False) -> None:
        self._replay_timer = None
        run_id = self._cursor_run()
        if run_id is None:
            return
        info = self.runs[run_id]
        run = self.sloth.store.runs.get(run_id)
        if run is None or force or (not run.lines and not run.active):
            run = self.sloth.attach_run(info, follow=info.status in RUN_ACTIVE)
        self._show(run)

    def _show(self, run: RunView) -> None:
        if self.pane.run is not run:
            self.pane.show(run, self.sloth.now())

    def runs_changed(self, changed: RunsChanged) -> None:
        run = self.pane.run
        if run is None:
            return
        added = changed.lines.get(run.run_id)
        if added is not None:
            self.pane.lines_added(added)
        if run.run_id in changed.runs:
            self.pane.refresh_header(self.sloth.now())

    def tick(self, now: float) -> None:
        run = self.pane.run
        if run is not None and run.active:
            self.pane.refresh_header(now)

    # ------------------------------------------------------------ actions

    def action_replay(self) -> None:
        self._show_selected(force=True)
        self.pane.log_view.focus()

    def action_rerun(self) -> None:
        run_id = self._cursor_run()
        if run_id is None:
            return
        info = self.runs[run_id]
        self.dismiss(None)
        if info.kind == pb.RUN_SHELL:
            self.sloth.open_shell(self.agent, info.command)
            return
        # History keeps no --env/--cwd (values may be secrets); a job started
        # from this console still knows its own.
        job = self.sloth.store.jobs.get(info.job_id)
        self.sloth.start_job(info.command, [self.agent], job.options if job else None)

    def action_cancel_run(self) -> None:
        run_id = self._cursor_run()
        run = self.sloth.store.runs.get(run_id) if run_id else None
        if run is None or not run.active:
            return
        self.sloth.confirm(
            "Cancel this run?",
            Text.assemble(("$ ", "dim"), (escape.shown(run.command), "bold"), "\n\non ", (run.agent, "bold")),
            lambda: self.sloth.cancel(run.run_id, f"run {fmt.short_id(run.run_id)} on {run.agent}"),
            yes="Cancel run",
            danger=True,
        )

    def action_focus_table(self) -> None:
        self.query_one(HistoryTable).focus()

    def action_toggle_wrap(self) -> None:
        self.pane.log_view.action_toggle_wrap()

    def action_close(self) -> None:
        self.dismiss(None)
