"""The top line: where the console is connected and what the fleet looks like."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from sloth_tui.model import fmt


@dataclass
class Connection:
    """The link to the master, as the status bar shows it."""

    state: str = "connecting"
    target: str = ""
    detail: str = ""
    retry_in: float | None = None
    attempt: int = 0


def connection_text(conn: Connection) -> Text:
    if conn.state == "connected":
        return Text.assemble(("● connected", "bold green"), (f" to {conn.target}", ""))
    if conn.state == "connecting":
        return Text.assemble(("◌ connecting", "bold yellow"), (f" to {conn.target}…", ""))
    text = Text.assemble(("✘ disconnected", "bold red"), (f" from {conn.target}", ""))
    if conn.retry_in is not None:
        text.append(f" · retrying in {conn.retry_in:g}s (attempt {conn.attempt})", "yellow")
    if conn.detail:
        text.append(f" · {conn.detail}", "red")
    return text


def fleet_text(counts: dict[str, int], marked: int, shown: int, filter_text: str) -> Text:
    total = sum(counts.values())
    text = Text(fmt.plural(total, "agent"))
    bits = [
        (counts.get("online", 0), "online", "green"),
        (counts.get("offline", 0), "offline", "red"),
        (counts.get("stopped", 0), "stopped", "yellow"),
    ]
    text.append(" (")
    text.append_text(Text(", ").join(Text(f"{n} {w}", c if n else "dim") for n, w, c in bits))
    text.append(")")
    if filter_text:
        text.append(f" · filter “{filter_text}”: {shown} shown", "bold")
    if marked:
        text.append(f" · {marked} marked", "bold magenta")
    return text


class StatusBar(Static):
    """Connection state on the left, fleet counts after it."""

    def show(self, conn: Connection, fleet: Text) -> None:
        self.update(Text.assemble(connection_text(conn), "  │  ", fleet))
        self.set_class(conn.state != "connected", "-degraded")
