"""The main screen: the agent table, the output pane of the agent under the cursor,
the job summary, and the command prompt."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from sloth_core import escape
from sloth_core.errors import SlothError
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import agent_word
from sloth_tui import keymap
from sloth_tui.model import fmt
from sloth_tui.model.connection import Connection
from sloth_tui.model.fleet import FleetChanges, empty_message
from sloth_tui.model.run_options import RunOptions, split_run_options
from sloth_tui.model.runs import RunsChanged, RunView
from sloth_tui.widgets.agent_table import AgentTable
from sloth_tui.widgets.filter_input import FilterInput
from sloth_tui.widgets.job_summary import JobSummary
from sloth_tui.widgets.keys_footer import KeysFooter
from sloth_tui.widgets.output_log import OutputLog
from sloth_tui.widgets.output_pane import OutputPane
from sloth_tui.widgets.prompt import PromptBar, PromptInput
from sloth_tui.widgets.status_bar import StatusBar, fleet_items

if TYPE_CHECKING:
    from sloth_tui.app import SlothApp

FILTER_DELAY_S = 0.08
"""Typing in the filter re-filters once the keys pause this long."""


_SCREEN_ACTIONS = frozenset(spec.action for spec in keymap.specs("fleet"))


class FleetScreen(Screen[None]):
    """Watch the fleet, pick targets, run, read the results."""

    BINDINGS = keymap.bindings("fleet")

    def __init__(self) -> None:
        super().__init__()
        self.shown_agent: str | None = None
        self._filter_timer: Timer | None = None
        self._paste_note: Text | None = None

    @property
    def sloth(self) -> SlothApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="main"):
            with Vertical(id="fleet-side"):
                yield FilterInput(placeholder="filter: words, status:offline, label:role=web, load>2, mem>80", id="filter")
                yield AgentTable(id="agents")
            with Vertical(id="output-side"):
                yield JobSummary(id="summary")
                yield OutputPane(id="pane")
        yield PromptBar(id="prompt-bar")
        yield KeysFooter()

    def on_mount(self) -> None:
        app = self.sloth
        app.subscribe(app.fleet_signal, self, self.fleet_changed)
        app.subscribe(app.runs_signal, self, self.runs_changed)
        app.subscribe(app.tick_signal, self, self.tick)
        app.subscribe(app.connection_signal, self, self.connection_changed)
        app.subscribe(app.health_signal, self, self.health_changed)
        self.query_one(JobSummary).show(None, None)
        self.query_one(FilterInput).display = False
        self.table.focus()
        self._show_pane()
        self._update_targets()
        self.connection_changed(app.connection)

    # ------------------------------------------------------------ parts

    @property
    def table(self) -> AgentTable:
        return self.query_one(AgentTable)

    @property
    def pane(self) -> OutputPane:
        return self.query_one(OutputPane)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    def active_contexts(self) -> list[str]:
        focused = self.focused
        if isinstance(focused, PromptInput):
            first = "prompt"
        elif isinstance(focused, FilterInput):
            first = "filter"
        elif isinstance(focused, OutputLog):
            first = "pane"
        else:
            first = "table"
        return [first, "fleet"]

    def palette_contexts(self) -> list[str]:
        return ["fleet", "table", "pane"]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While typing in the prompt or the filter, the screen's letter keys
        # are text: the footer shows the input's own keys instead.
        if isinstance(self.focused, Input) and action in _SCREEN_ACTIONS:
            return False
        return True

    # ------------------------------------------------------------ updates from the app

    @property
    def _built(self) -> bool:
        # The app's workers and timers may still report while the app is
        # shutting down and this screen's widgets are already gone.
        return bool(self.query(AgentTable))

    def connection_changed(self, conn: Connection) -> None:
        if not self._built:
            return
        self.table.set_stale(conn.stale, self.sloth.fleet, self.sloth.now())
        self._update_status()
        self._update_empty()

    def health_changed(self, health: pb.StoreHealth) -> None:
        if self._built:
            self._update_status()

    def fleet_changed(self, changes: FleetChanges | None) -> None:
        """Redraw what ``changes`` touched (None: every row)."""
        if not self._built:
            return
        self.table.sync(self.sloth.fleet, changes, self.sloth.now())
        self._update_status()
        self._update_empty()
        self._update_targets()
        if self.shown_agent is None or self.table.cursor_agent is not None:
            self._follow_cursor()

    def runs_changed(self, changed: RunsChanged) -> None:
        if not self._built:
            return
        store = self.sloth.store
        if changed.new_job is not None:
            self._job_started(changed.new_job)
        shown = self.pane.run
        expected = store.for_agent(self.shown_agent) if self.shown_agent else None
        if expected is not shown:
            self._show_pane()
        elif shown is not None:
            added = changed.lines.get(shown.run_id)
            if added is not None:
                self.pane.lines_added(added)
            if shown.run_id in changed.runs:
                self.pane.refresh_header(self.sloth.now())
        job_id = store.current_job
        if job_id is not None and any(getattr(store.runs.get(r), "job_id", None) == job_id for r in changed.runs):
            self._update_summary()

    def tick(self, now: float) -> None:
        if not self._built:
            return
        if not self.sloth.connection.stale:
            # While disconnected "Seen" stays as it was when the link broke: the
            # master did not stop hearing from the agents, we stopped hearing from it.
            self.table.tick(self.sloth.fleet, now)
        if self.sloth.connection.state == "disconnected":
            self._update_status()  # the retry countdown, the age of what is shown
        run = self.pane.run
        if run is not None and run.active:
            self.pane.refresh_header(now)

    def _job_started(self, job_id: str) -> None:
        job = self.sloth.store.jobs[job_id]
        if self.shown_agent not in job.targets and job.targets:
            first = job.targets[0]
            if not self.table.move_to(first):
                self._show_agent(first)
        self._update_summary()

    # ------------------------------------------------------------ what is shown

    def on_agent_table_cursor_moved(self, event: AgentTable.CursorMoved) -> None:
        self._follow_cursor()

    def _follow_cursor(self) -> None:
        agent = self.table.cursor_agent
        if agent != self.shown_agent:
            self._show_agent(agent)
        self._update_targets()

    def _show_agent(self, agent: str | None) -> None:
        self.shown_agent = agent
        self._show_pane()

    def _show_pane(self) -> None:
        agent = self.shown_agent
        run = self.sloth.store.for_agent(agent) if agent else None
        self.pane.show(run, self.sloth.now(), placeholder=self._placeholder(agent))

    def _placeholder(self, agent: str | None) -> str:
        if agent is None:
            return empty_message(self.sloth.fleet, self.sloth.connection)
        if self.sloth.fleet.active_run_of(agent) is not None:
            return f"{agent} is running a command started elsewhere. Enter follows it."
        return f"{agent}: nothing run from here yet. Enter shows its last run, h its history, : runs a command."

    def _update_summary(self) -> None:
        store = self.sloth.store
        job = store.jobs.get(store.current_job) if store.current_job else None
        self.query_one(JobSummary).show(job, store.summary(job.job_id) if job else None)

    def _update_status(self) -> None:
        fleet = self.sloth.fleet
        conn = self.sloth.connection
        mono = time.monotonic()
        items = fleet_items(
            fleet.counts(),
            marked=len(fleet.marks),
            hidden_marked=len(self._hidden_marks()),
            shown=len(self.table.order),
            filter_text=fleet.filter.text,
            stale_for=mono - conn.lost_at if conn.stale and conn.lost_at is not None else None,
            warning=self.sloth.feed.history_health.warning,
        )
        self.query_one(StatusBar).show(conn, mono, items)

    def _update_empty(self) -> None:
        fleet = self.sloth.fleet
        self.table.set_empty_text(Text(empty_message(fleet, self.sloth.connection), "dim"))
        if self.shown_agent is None:
            self._show_pane()

    def _hidden_marks(self) -> set[str]:
        """Marked agents the filter hides: they still receive the command."""
        fleet = self.sloth.fleet
        return fleet.marks - set(self.table.order) if fleet.filter else set()

    # ------------------------------------------------------------ targets and the prompt

    def targets(self) -> list[str]:
        """Marked agents (in display order), else the one under the cursor."""
        fleet = self.sloth.fleet
        if fleet.marks:
            return fleet.ordered(fleet.marks)
        agent = self.table.cursor_agent
        return [agent] if agent else []

    def _update_targets(self) -> None:
        marked = bool(self.sloth.fleet.marks)
        self.query_one(PromptBar).set_targets(
            self.targets(), marked, len(self._hidden_marks()), note=self._paste_note
        )

    def on_prompt_input_pasted_lines(self, event: PromptInput.PastedLines) -> None:
        event.stop()
        self._paste_note = Text(
            f"⚠ pasted {event.count} lines: the prompt runs one line, so it kept the first "
            "(join lines with ; or && to run them together)",
            "bold yellow",
        )
        self._update_targets()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if isinstance(event.input, FilterInput):
            self.table.focus()
        elif isinstance(event.input, PromptInput):
            self._submit(event.value)

    def _submit(self, value: str) -> None:
        line = value.strip()
        try:
            options, command = split_run_options(line)
        except SlothError as exc:
            self.notify(str(exc), title="Run options", severity="error", markup=False)
            return
        if not command:
            if options:
                self.notify("Give the command after the options.", title="Run options", severity="warning", markup=False)
            return
        targets = self.targets()
        if not targets:
            self.notify("Move to an agent or mark some with space first.", title="No target", severity="warning", markup=False)
            return
        fleet = self.sloth.fleet
        everyone = len(targets) > 1 and set(targets) >= set(fleet.agents)
        hidden = self._hidden_marks()
        if len(targets) > self.sloth.confirm_over or everyone or hidden:
            scope = f"all {len(targets)} agents" if everyone else fmt.plural(len(targets), "agent")
            body = Text.assemble(
                ("$ ", "dim"), (command, "bold"), "\n",
                (f"{options.describe()}\n" if options else "", "dim"), "\n",
                ("on ", "dim"), (scope, "bold"), ": ", fmt.name_list(targets, limit=8),
            )
            if hidden:
                body.append(f"\n\n{len(hidden)} of them hidden by the filter: ", "bold yellow")
                body.append(fmt.name_list(fleet.ordered(hidden), limit=8))
            self.sloth.confirm(
                f"Run on {scope}?", body, lambda: self._run(line, command, targets, options), yes="Run"
            )
        else:
            self._run(line, command, targets, options)

    def _run(self, line: str, command: str, targets: list[str], options: RunOptions) -> None:
        self._paste_note = None
        self._update_targets()
        self.sloth.history.add(line)  # with its options: recalled as typed
        self.prompt.value = ""
        self.sloth.start_job(command, targets, options)
        self.table.focus()

    def on_prompt_input_recall(self, event: PromptInput.Recall) -> None:
        history = self.sloth.history
        entry = history.previous(self.prompt.value) if event.step < 0 else history.next()
        if entry is not None:
            self.prompt.value = entry
            self.prompt.cursor_position = len(entry)

    # ------------------------------------------------------------ filter

    def on_input_changed(self, event: Input.Changed) -> None:
        if not isinstance(event.input, FilterInput):
            return
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY_S, self._apply_filter)

    def _apply_filter(self) -> None:
        self._filter_timer = None
        self.sloth.fleet.set_filter(self.query_one(FilterInput).value)
        self._resync()

    def action_focus_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one(FilterInput)
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        box.value = ""
        box.display = False
        self.sloth.fleet.set_filter("")
        self._resync()
        self.table.focus()

    # ------------------------------------------------------------ focus

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    def action_focus_table(self) -> None:
        box = self.query_one(FilterInput)
        box.display = bool(box.value)
        self.table.focus()

    def action_zoom(self) -> None:
        self.toggle_class("-zoomed")
        if self.has_class("-zoomed"):
            self.pane.log_view.focus()
        else:
            self.table.focus()

    # ------------------------------------------------------------ marks and sorting

    def action_mark(self) -> None:
        agent = self.table.cursor_agent
        if agent is None:
            return
        fleet = self.sloth.fleet
        fleet.toggle_mark(agent)
        self.table.refresh_names(fleet, {agent}, self.sloth.now())
        self.table.action_cursor_down()
        self._marks_changed()

    def action_mark_all(self) -> None:
        fleet = self.sloth.fleet
        visible = set(self.table.order)
        fleet.marks |= visible
        self.table.refresh_names(fleet, visible, self.sloth.now())
        self._marks_changed()

    def action_clear_marks(self) -> None:
        fleet = self.sloth.fleet
        marked, fleet.marks = set(fleet.marks), set()
        self.table.refresh_names(fleet, marked, self.sloth.now())
        self._marks_changed()

    def _marks_changed(self) -> None:
        self._update_targets()
        self._update_status()

    def action_sort(self, column: str) -> None:
        self.sloth.fleet.sort_by(column)
        self._resync()

    def _resync(self) -> None:
        """The filter or the sort changed: re-lay the table."""
        self.fleet_changed(FleetChanges())

    # ------------------------------------------------------------ runs

    def _shown_run(self) -> RunView | None:
        return self.pane.run

    def action_open_agent(self) -> None:
        """Focus the agent's output, loading its live or last run if there is none here."""
        agent = self.table.cursor_agent
        if agent is None:
            return
        run = self.sloth.store.for_agent(agent)
        elsewhere = self.sloth.fleet.active_run_of(agent)
        if run is None or (elsewhere is not None and not run.active and elsewhere.run_id != run.run_id):
            self.sloth.open_latest(agent)
        self.pane.log_view.focus()

    def action_open_shell(self) -> None:
        """`agent shell` on the agent under the cursor, in this terminal; back here when it ends."""
        name = self.table.cursor_agent
        agent = self.sloth.fleet.agents.get(name) if name else None
        if agent is None:
            self.notify("Move to an agent first.", title="Shell", markup=False)
            return
        if agent.status != agent_word(pb.AGENT_ONLINE):
            # Said here rather than after a round trip through a suspended screen.
            self.notify(f"{agent.name} is {agent.status}.", title="Shell", severity="warning", markup=False)
            return
        self.sloth.open_shell(agent.name)

    def action_describe_agent(self) -> None:
        from sloth_tui.screens.agent_details import AgentDetailsScreen

        name = self.table.cursor_agent
        agent = self.sloth.fleet.agents.get(name) if name else None
        if agent is None:
            self.notify("Move to an agent first.", title="Describe", markup=False)
            return
        self.app.push_screen(AgentDetailsScreen(agent, self.sloth.fleet.running(agent.name), self.sloth.now()))

    def action_history(self) -> None:
        from sloth_tui.screens.history import HistoryScreen

        agent = self.shown_agent
        if agent is None:
            self.notify("Move to an agent first.", title="History", markup=False)
            return
        self.app.push_screen(HistoryScreen(agent))

    def _current_job_runs(self) -> list[RunView]:
        store = self.sloth.store
        return list(store.job_runs(store.current_job))

    def action_next_failed(self) -> None:
        runs = self._current_job_runs()
        failed = [r for r in runs if r.failed]
        if not failed:
            self.notify("No failed run in the current job.", title="Next failed", markup=False)
            return
        agents = [r.agent for r in runs]
        start = agents.index(self.shown_agent) if self.shown_agent in agents else -1
        ordered = runs[start + 1 :] + runs[: start + 1]
        target = next(r for r in ordered if r.failed)
        self._go_to(target.agent)

    def action_job_agent(self, step: int) -> None:
        agents = [r.agent for r in self._current_job_runs()]
        if not agents:
            return
        index = agents.index(self.shown_agent) if self.shown_agent in agents else -step
        self._go_to(agents[(index + step) % len(agents)])

    def _go_to(self, agent: str) -> None:
        if not self.table.move_to(agent):
            self._show_agent(agent)

    def action_cancel_run(self) -> None:
        run = self._shown_run()
        if run is None or not run.active:
            self.notify("The run shown here is not running.", title="Cancel", markup=False)
            return
        self.sloth.confirm(
            "Cancel this run?",
            Text.assemble(
                ("$ ", "dim"), (escape.shown(run.command), "bold"), "\n\n",
                ("on ", "dim"), (run.agent, "bold"), (f"  (run {fmt.short_id(run.run_id)})", "dim"),
            ),
            lambda: self.sloth.cancel(run.run_id, f"run {fmt.short_id(run.run_id)} on {run.agent}"),
            yes="Cancel run",
            danger=True,
        )

    def action_cancel_job(self) -> None:
        store = self.sloth.store
        job = store.jobs.get(store.current_job) if store.current_job else None
        if job is None:
            return
        active = [r for r in store.job_runs(job.job_id) if r.active]
        if not active:
            self.notify("Nothing of the current job is running.", title="Cancel", markup=False)
            return
        self.sloth.confirm(
            "Cancel the whole job?",
            Text.assemble(
                ("$ ", "dim"), (escape.shown(job.command), "bold"), "\n\n",
                f"{fmt.plural(len(active), 'run')} still in flight: ",
                fmt.name_list([r.agent for r in active], limit=8),
            ),
            lambda: self.sloth.cancel(job.job_id, f"job {fmt.short_id(job.job_id)}"),
            yes="Cancel job",
            danger=True,
        )

    def action_rerun_job(self) -> None:
        store = self.sloth.store
        job = store.jobs.get(store.current_job) if store.current_job else None
        if job is None:
            return
        targets = list(job.targets)
        options = job.options
        if len(targets) > 1:
            # Re-running is one key away from anywhere: more than one agent is worth a question.
            self.sloth.confirm(
                f"Re-run on {fmt.plural(len(targets), 'agent')}?",
                Text.assemble(
                    ("$ ", "dim"), (escape.shown(job.command), "bold"), "\n",
                    (f"{escape.shown(options.describe())}\n" if options else "", "dim"),
                    "\non ", fmt.name_list(targets, 8),
                ),
                lambda: self.sloth.start_job(job.command, targets, options),
                yes="Run",
            )
        else:
            self.sloth.start_job(job.command, targets, options)

    # ------------------------------------------------------------ agents

    def action_stop_agent(self) -> None:
        self._agent_call("stop", "Stop", "The agent process exits; it shows as stopped until it starts again.")

    def action_delete_agent(self) -> None:
        agent = self.table.cursor_agent or ""
        self._agent_call(
            "delete",
            "Delete",
            Text.assemble(
                "The master forgets ", (agent, "bold"), " and ", ("revokes its certificate", "bold"),
                ": it can no longer register or run commands.\n\nTo bring it back, re-join it with a token: "
                "print one with ", ("sloth-runner master token", "bold"),
                " and start the agent with ", (f"--name {agent} --token TOKEN", "bold"), ".",
            ),
        )

    def action_toggle_wrap(self) -> None:
        self.pane.log_view.action_toggle_wrap()

    def _agent_call(self, verb: str, title: str, explain: Text | str) -> None:
        agent = self.table.cursor_agent
        if agent is None:
            return
        self.sloth.confirm(
            f"{title} agent {agent}?",
            explain,
            lambda: self.sloth.agent_call(verb, agent),
            yes=title,
            danger=True,
        )
