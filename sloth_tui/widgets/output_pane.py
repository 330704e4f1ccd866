"""An agent's output pane: a header with the run's state, the lines, a follow indicator."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from sloth_core import escape
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.model import fmt
from sloth_tui.model.runs import RunView, end_of
from sloth_tui.widgets.flow import Flow
from sloth_tui.widgets.output_log import OutputLog

RUN_STYLE = {
    pb.RUN_PENDING: ("◌", "yellow"),
    pb.RUN_RUNNING: ("●", "cyan"),
    pb.RUN_SUCCEEDED: ("✔", "green"),
    pb.RUN_FAILED: ("✘", "red"),
    pb.RUN_CANCELLED: ("■", "yellow"),
    pb.RUN_TIMED_OUT: ("⏱", "red"),
    pb.RUN_LOST: ("?", "red"),
    pb.RUN_REJECTED: ("⊘", "magenta"),
}


def run_badge(run: RunView, *, bold: bool = True) -> Text:
    """``✘ failed · exit 3`` in the run's colour (the pane and the history say it alike)."""
    mark, colour = RUN_STYLE.get(run.status, ("?", "grey50"))
    text = Text.assemble((f"{mark} {run.status_word}", f"bold {colour}" if bold else colour))
    end = end_of(run.info)
    if end:
        text.append(f" · {end}", colour)
    return text


def dropped_text(run: RunView) -> Text:
    """The pane keeps the newest lines only: say how many are gone and where they are."""
    return Text.assemble(
        ("⋯ ", "bold"),
        (f"{run.dropped_lines:,} earlier lines not kept here", "bold"),
        f" (the pane keeps the last {run.max_lines:,}) · all of it: ",
        (f"sloth-runner runs show {fmt.short_id(run.run_id)}", "bold"),
    )


def run_header(run: RunView, now: float) -> Group:
    """Agent, status, exit code, duration; then the command and run id; then the error.

    Each part wraps as a whole on a narrow pane (a command longer than the
    line is cut with an ellipsis), never in the middle of ``run 1a2b3c4d``.
    """
    badge = run_badge(run)
    took = run.duration(now)
    if took is not None:
        badge.append(f" · {fmt.duration(took)}", "dim")
    first = [Text(run.agent, "bold"), badge]
    if run.detached and run.active:
        first.append(Text("⚠ stream lost, reattaching…", "yellow"))
    by = f" by {escape.shown(run.info.requested_by)}" if run.info.requested_by else ""
    second = [
        Text.assemble(("$ ", "dim"), (escape.shown(run.command), "bold")),
        Text(f"run {fmt.short_id(run.run_id)}{by}", "dim"),
    ]
    parts: list[Flow | Text] = [Flow(first), Flow(second)]
    if run.info.error:
        parts.append(Text(escape.shown(run.info.error), "red"))
    return Group(*parts)


class OutputPane(Vertical):
    """Shows one run of one agent (or says why there is nothing to show)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.run: RunView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="pane-header", classes="pane-header")
        yield Static(id="pane-dropped", classes="pane-dropped")
        yield OutputLog(id="pane-log")
        yield Static(id="pane-indicator", classes="pane-indicator")

    @property
    def log_view(self) -> OutputLog:
        return self.query_one(OutputLog)

    def show(self, run: RunView | None, now: float, *, placeholder: str = "") -> None:
        self.run = run
        self.log_view.show(run)
        self.set_class(run is None, "-empty")
        self.refresh_header(now, placeholder=placeholder)
        self._update_dropped()
        self._update_indicator()

    def lines_added(self, count: int) -> None:
        self.log_view.lines_added(count)
        self._update_dropped()

    def _update_dropped(self) -> None:
        notice = self.query_one("#pane-dropped", Static)
        run = self.run
        notice.display = run is not None and run.dropped_lines > 0
        if run is not None and run.dropped_lines:
            notice.update(dropped_text(run))

    def refresh_header(self, now: float, *, placeholder: str = "") -> None:
        header = self.query_one("#pane-header", Static)
        if self.run is None:
            header.update(Text(placeholder or "No run to show.", style="dim"))
        else:
            header.update(run_header(self.run, now))

    def on_output_log_follow_changed(self, event: OutputLog.FollowChanged) -> None:
        event.stop()
        self._update_indicator()

    def _update_indicator(self) -> None:
        log = self.log_view
        indicator = self.query_one("#pane-indicator", Static)
        if log.follow or self.run is None:
            indicator.display = False
            return
        indicator.display = True
        new = f"{log.unseen:,} new lines below · " if log.unseen else ""
        indicator.update(Text(f"⏸ paused · {new}f or End to follow", style="bold"))
