"""The strip above the panes: what the current job is doing on all its agents."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from sloth_core import escape
from sloth_tui.model import fmt
from sloth_tui.model.runs import Job, Summary
from sloth_tui.widgets.flow import Flow


def summary_items(job: Job, summary: Summary) -> tuple[list[Text], list[Text]]:
    """The job, its command and its size; then one item per outcome. Wrapped between items only."""
    head = [
        Text.assemble(("job ", "dim"), (fmt.short_id(job.job_id), "bold")),
        Text.assemble(("$ ", "dim"), (escape.shown(job.command), "bold")),
        Text.assemble(("→ ", "dim"), fmt.plural(len(job.run_ids), "agent")),
    ]
    if job.warning:
        head.append(Text(f"⚠ {job.warning}", "bold yellow"))
    parts = [
        (summary.running, "running", "cyan", "●"),
        (summary.succeeded, "succeeded", "green", "✔"),
        (summary.failed, "failed", "red", "✘"),
        (summary.rejected, "rejected", "magenta", "⊘"),
    ]
    if summary.cancelled:
        parts.append((summary.cancelled, "cancelled", "yellow", "■"))
    counts = [Text(f"{mark} {count} {word}", colour if count else "dim") for count, word, colour, mark in parts]
    return head, counts


class JobSummary(Static):
    """Counts of the current job's runs by outcome; hidden when there is no job."""

    def show(self, job: Job | None, summary: Summary | None) -> None:
        self.display = job is not None
        if job is not None and summary is not None:
            head, counts = summary_items(job, summary)
            self.update(Group(Flow(head), Flow(counts)))
