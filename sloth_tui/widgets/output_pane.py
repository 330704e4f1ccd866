"""An agent's output pane: a header with the run's state, the lines, a follow indicator."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from sloth_core.escape import shown
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.model import fmt
from sloth_tui.model.runs import RunView
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


def run_badge(run: RunView) -> Text:
    """``✘ failed · exit 3`` in the run's colour."""
    mark, colour = RUN_STYLE.get(run.status, ("?", "grey50"))
    text = Text.assemble((f"{mark} {run.status_word}", f"bold {colour}"))
    info = run.info
    if not run.active and run.status not in (pb.RUN_REJECTED, pb.RUN_STATUS_UNSPECIFIED):
        if info.signal:
            text.append(f" · signal {info.signal}", colour)
        elif info.exit_code >= 0:
            text.append(f" · exit {info.exit_code}", colour)
    return text


def run_header(run: RunView, now: float) -> Text:
    """Two lines: agent, status, exit code, duration; then the command and run id."""
    head = Text.assemble((run.agent, "bold"), "  ", run_badge(run))
    took = run.duration(now)
    if took is not None:
        head.append(f" · {fmt.duration(took)}", "dim")
    if run.detached and run.active:
        head.append("  ⚠ stream lost, reattaching…", "yellow")
    head.append("\n")
    head.append("$ ", "dim")
    head.append(shown(run.command), "bold")
    head.append(f"  run {fmt.short_id(run.run_id)}", "dim")
    if run.info.requested_by:
        head.append(f" by {shown(run.info.requested_by)}", "dim")
    if run.info.error:
        head.append("\n")
        head.append(shown(run.info.error), "red")
    return head


class OutputPane(Vertical):
    """Shows one run of one agent (or says why there is nothing to show)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.run: RunView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="pane-header", classes="pane-header")
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
        self._update_indicator()

    def lines_added(self, count: int) -> None:
        self.log_view.lines_added(count)

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
