"""The top line: where the console is connected and what the fleet looks like."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sloth_tui.model import fmt
from sloth_tui.model.connection import CONNECTED, CONNECTING, Connection
from sloth_tui.widgets.flow import Flow


def connection_items(conn: Connection, now: float) -> list[Text]:
    """The link as the operator should read it; ``now`` is on the monotonic clock."""
    if conn.state == CONNECTED:
        return [Text.assemble(("● connected", "bold green"), f" to {conn.target}")]
    if conn.state == CONNECTING:
        return [Text.assemble(("◌ connecting", "bold yellow"), f" to {conn.target}…")]
    items = [Text.assemble(("✘ disconnected", "bold red"), f" from {conn.target}")]
    retry = conn.retry_in(now)
    if retry is not None:
        when = "now" if retry == 0 else f"in {retry}s"
        items.append(Text(f"retrying {when} (attempt {conn.attempt})", "yellow"))
    if conn.detail:
        items.append(Text(conn.detail, "red"))
    return items


def fleet_items(
    counts: dict[str, int], *, marked: int, hidden_marked: int, shown: int, filter_text: str,
    stale_for: float | None = None, warning: str = "",
) -> list[Text]:
    """``7 agents (5 online, 1 offline, 1 stopped)``, the master's warning, the filter, the marks; each an item."""
    total = sum(counts.values())
    head = Text(fmt.plural(total, "agent"))
    bits = [
        (counts.get("online", 0), "online", "green"),
        (counts.get("offline", 0), "offline", "red"),
        (counts.get("stopped", 0), "stopped", "yellow"),
    ]
    head.append(" (")
    head.append_text(Text(", ").join(Text(f"{n} {w}", c if n else "dim") for n, w, c in bits))
    head.append(")")
    items = [head]
    if warning:
        items.append(Text(f"⚠ {warning}", "bold red"))
    if stale_for is not None:
        items.append(Text(f"statuses as of {fmt.ago(stale_for)} ago", "bold yellow"))
    if filter_text:
        items.append(Text(f"filter “{filter_text}”: {shown} shown", "bold"))
    if marked:
        text = Text(f"{marked} marked", "bold magenta")
        if hidden_marked:
            text.append(f" ({hidden_marked} hidden by the filter)", "bold yellow")
        items.append(text)
    return items


class StatusBar(Static):
    """Connection state first, fleet counts after it; wraps between items on a narrow terminal."""

    def show(self, conn: Connection, now: float, fleet: list[Text]) -> None:
        self.update(Flow([*connection_items(conn, now), *fleet], separator=" · "))
        self.set_class(conn.state != CONNECTED, "-degraded")
