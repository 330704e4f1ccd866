"""``d`` on an agent: everything the master knows about it, facts included."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sloth_tui import keymap
from sloth_tui.model import fmt
from sloth_tui.model.fleet import Agent
from sloth_tui.widgets.agent_table import percent_cell, status_text


def details_table(agent: Agent, running: int, now: float) -> Table:
    """Label and value rows: who the agent is, then every fact it reported (all already escaped)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    seen = fmt.ago(now - agent.last_seen) if agent.last_seen else "never"
    rows: list[tuple[str, Text | str]] = [
        ("Status", status_text(agent.status)),
        ("Address", agent.address),
        ("Hostname", agent.hostname),
        ("OS", agent.os),
        ("Version", agent.version),
        ("Labels", agent.labels_text or "-"),
        ("Last seen", seen),
        ("Runs", str(running)),
    ]
    if agent.details:
        rows += [
            ("CPU", Text.assemble(percent_cell(agent.cpu), " (1-minute load per core)")),
            ("MEM", percent_cell(agent.mem)),
            ("DISK", percent_cell(agent.disk)),
        ]
        rows += list(agent.details)
    else:
        rows.append(("Facts", Text("none reported (agent started with --no-facts, or older)", "dim")))
    for label, value in rows:
        table.add_row(label, value)
    return table


class AgentDetailsScreen(ModalScreen[None]):
    """One agent in full; closes with the key that opened it, Esc or q."""

    BINDINGS = keymap.bindings("details")

    def __init__(self, agent: Agent, running: int, now: float) -> None:
        super().__init__()
        self.agent = agent
        self.running = running
        self.now = now

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="details-body"):
            yield Static(Text(f"Agent {self.agent.name}", style="bold"), id="details-title")
            yield Static(details_table(self.agent, self.running, self.now), id="details-table")

    def action_close(self) -> None:
        self.dismiss(None)
