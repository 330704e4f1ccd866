"""The strip above the panes: what the current job is doing on all its agents."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sloth_core.escape import shown
from sloth_tui.model import fmt
from sloth_tui.model.runs import Job, Summary


def summary_text(job: Job, summary: Summary) -> Text:
    text = Text.assemble(
        ("job ", "dim"),
        (fmt.short_id(job.job_id), "bold"),
        ("  $ ", "dim"),
        (shown(job.command), "bold"),
        ("  → ", "dim"),
        fmt.plural(len(job.run_ids), "agent"),
        "\n",
    )
    parts = [
        (summary.running, "running", "cyan", "●"),
        (summary.succeeded, "succeeded", "green", "✔"),
        (summary.failed, "failed", "red", "✘"),
        (summary.rejected, "rejected", "magenta", "⊘"),
    ]
    if summary.cancelled:
        parts.append((summary.cancelled, "cancelled", "yellow", "■"))
    for i, (count, word, colour, mark) in enumerate(parts):
        if i:
            text.append("  ")
        text.append(f"{mark} {count} {word}", colour if count else "dim")
    return text


class JobSummary(Static):
    """Counts of the current job's runs by outcome; hidden when there is no job."""

    def show(self, job: Job | None, summary: Summary | None) -> None:
        self.display = job is not None
        if job is not None and summary is not None:
            self.update(summary_text(job, summary))
