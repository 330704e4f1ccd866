"""The live agent table: a line-based view that redraws only the rows that changed.

Textual's ``DataTable`` re-renders every visible cell whenever any cell
changes or focus moves (its caches are keyed on a table-wide update count):
about 40 ms for a screenful, which alone breaks a 50 ms budget on a live
fleet. This view keeps one rendered strip per agent, invalidated only when
that agent's cells change, and draws the cursor on top; filter and sort are
list operations on the model, never widget rebuilds.

Columns have a priority (:data:`PRIORITY`): on a narrow terminal the table
shows name and status first and drops the rest from the end of that list
(labels and address go first). With no row to show it says why
(:attr:`AgentTable.empty_text`). While the console is disconnected the
statuses are drawn as stale: the last word the master gave, not a fact.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from sloth_core import facts_view
from sloth_tui import keymap
from sloth_tui.model import fmt
from sloth_tui.model.fleet import Agent, FleetChanges, FleetModel

COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "),
    ("name", "Name"),
    ("status", "Status"),
    ("address", "Address"),
    ("labels", "Labels"),
    ("version", "Version"),
    ("last_seen", "Seen"),
    ("running", "Runs"),
    ("cpu", "CPU"),
    ("mem", "MEM"),
    ("disk", "DISK"),
)
SORTABLE = {"name", "status", "address", "version", "last_seen", "running", "cpu", "mem", "disk"}
PRIORITY = (
    "mark", "name", "status", "running", "last_seen", "version", "address", "cpu", "mem", "disk", "labels",
)
"""Columns in the order they are given room: the first ones are always shown, the last dropped first."""
ALWAYS = 3
"""Mark, name and status are shown however narrow the table."""
NAME = 1
SEEN = 6
MIN_NAME = 8
GAP = 2
"""Spaces between columns."""

STATUS_STYLE = {
    "online": ("●", "green"),
    "offline": ("●", "red"),
    "stopped": ("■", "yellow"),
    "unknown": ("?", "grey50"),
}
OFFLINE_AFTER_S = 15.0
"""Within this, the master vouches an online agent is alive (3 missed 5 s heartbeats)."""

Cells = tuple[Text, ...]


GRADE_STYLE = {"ok": "green", "warn": "yellow", "high": "bold red"}
"""k9s's colours for a percentage: green, yellow above 70 %, red above 90 %."""


def percent_cell(percent: float | None) -> Text:
    """``42%`` coloured by :func:`~sloth_core.facts_view.grade`; ``-`` when not reported."""
    if percent is None:
        return Text("-", "grey50")
    return Text(facts_view.percent_text(percent), GRADE_STYLE[facts_view.grade(percent)])


def status_text(status: str, *, stale: bool = False) -> Text:
    """``● online``; stale (disconnected): ``◌ online?`` in grey, the last known word."""
    if stale:
        return Text(f"◌ {status}?", "grey50")
    dot, colour = STATUS_STYLE.get(status, STATUS_STYLE["unknown"])
    return Text.assemble((dot, colour), " ", (status, colour if status != "online" else ""))


def seen_text(agent: Agent, now: float) -> str:
    if not agent.last_seen:
        return "—"
    age = now - agent.last_seen
    if agent.status == "online" and age > OFFLINE_AFTER_S:
        return f"<{int(OFFLINE_AFTER_S)}s"
    return fmt.ago(age)


class AgentTable(ScrollView, can_focus=True):
    """One row per visible agent, in the model's order. It renders; the screen decides."""

    BINDINGS = keymap.bindings("table")
    COMPONENT_CLASSES = {"agent-table--header", "agent-table--cursor"}

    class CursorMoved(Message):
        """The cursor is on another agent (or on none)."""

        def __init__(self, table: AgentTable, agent: str | None) -> None:
            super().__init__()
            self.table = table
            self.agent = agent

        @property
        def control(self) -> AgentTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, Cells] = {}
        self._strips: dict[str, Strip] = {}
        self._widths = [len(label) for _, label in COLUMNS]
        self._labels = [label for _, label in COLUMNS]
        self._cursor = 0
        self._cursor_name: str | None = None
        self._header_style: Style | None = None
        self._shown = list(range(len(COLUMNS)))
        """Indices of the columns drawn, in table order."""
        self.stale = False
        self.empty_text = Text()
        """What the table says when it has no row (set by the screen)."""

    # -------------------------------------------------------------- queries

    @property
    def cursor_agent(self) -> str | None:
        return self._cursor_name

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def order(self) -> list[str]:
        """Agent names in display order."""
        return list(self._order)

    def row_text(self, name: str) -> list[str]:
        """The plain text of an agent's cells (tests, screen readers)."""
        return [cell.plain for cell in self._cells[name]]

    def move_to(self, name: str) -> bool:
        """Put the cursor on agent ``name`` if it is shown."""
        row = self._index.get(name)
        if row is None:
            return False
        self._set_cursor(row)
        return True

    # -------------------------------------------------------------- updates

    def _row_cells(self, fleet: FleetModel, agent: Agent, now: float) -> Cells:
        marked = agent.name in fleet.marks
        style = "bold magenta" if marked else ""
        return (
            Text("✓" if marked else "", style=style),
            Text(agent.name, style=style),
            status_text(agent.status, stale=self.stale),
            Text(agent.address),
            Text(agent.labels_text),
            Text(agent.version),
            Text(seen_text(agent, now)),
            Text(str(fleet.running(agent.name) or "")),
            percent_cell(agent.cpu),
            percent_cell(agent.mem),
            percent_cell(agent.disk),
        )

    def sync(self, fleet: FleetModel, changes: FleetChanges | None, now: float) -> None:
        """Bring the rows in line with ``fleet``; ``changes=None`` rebuilds every row.

        Only the cells of changed agents are rebuilt; filter and sort are a
        new order. The cursor stays on the same agent while it is shown.
        """
        desired = fleet.visible()
        present = self._cells
        if changes is None:
            stale = set(present)
        else:
            stale = changes.updated | changes.removed
        for name in list(present):
            if name in stale or name not in fleet.agents:
                del present[name]
                self._strips.pop(name, None)
        for name in desired:
            if name not in present:
                present[name] = self._row_cells(fleet, fleet.agents[name], now)
        self._set_order(desired)
        self._update_widths(fleet)

    def _set_order(self, desired: list[str]) -> None:
        keep = self._cursor_name
        if desired != self._order:
            self._order = desired
            self._index = {name: i for i, name in enumerate(desired)}
            self.refresh()
        self.virtual_size = Size(self._total_width(), len(self._order) + 1)
        row = self._index.get(keep, min(self._cursor, len(self._order) - 1)) if keep else 0
        self._set_cursor(max(row, 0))

    def _update_widths(self, fleet: FleetModel) -> None:
        arrow = " ▼" if fleet.sort_reverse else " ▲"
        labels = [
            label + arrow if key == fleet.sort_column and key in SORTABLE else label for key, label in COLUMNS
        ]
        widths = [len(label) for label in labels]
        for name in self._order:
            for i, cell in enumerate(self._cells[name]):
                if cell.cell_len > widths[i]:
                    widths[i] = cell.cell_len
        if widths != self._widths or labels != self._labels:
            self._widths, self._labels = widths, labels
            self._lay_out()

    def _lay_out(self) -> None:
        """Choose the columns that fit the width, by priority; redraw if that changed."""
        room = self.scrollable_content_region.width
        natural = self._widths
        shown = set(range(ALWAYS))
        used = sum(natural[i] + GAP for i in shown)
        if room > 0:
            for key in PRIORITY[ALWAYS:]:
                i = next(n for n, (k, _) in enumerate(COLUMNS) if k == key)
                if used + natural[i] + GAP <= room:
                    shown.add(i)
                    used += natural[i] + GAP
        else:
            shown = set(range(len(COLUMNS)))
        order = sorted(shown)
        self._shown = order
        self._strips.clear()
        self.virtual_size = Size(self._total_width(), len(self._order) + 1)
        self.refresh()

    def _drawn_widths(self) -> list[int]:
        """Widths of the shown columns; the name gives way when even they do not fit."""
        widths = [self._widths[i] for i in self._shown]
        room = self.scrollable_content_region.width
        if room > 0:
            excess = sum(widths) + GAP * len(widths) - room
            if excess > 0:
                widths[NAME] = max(MIN_NAME, widths[NAME] - excess)
        return widths

    def _total_width(self) -> int:
        widths = self._drawn_widths()
        return sum(widths) + GAP * len(widths)

    @property
    def columns(self) -> list[str]:
        """Keys of the columns drawn now, in order."""
        return [COLUMNS[i][0] for i in self._shown]

    def refresh_names(self, fleet: FleetModel, names: set[str], now: float) -> None:
        """Re-render the rows of ``names`` (their marks changed)."""
        for name in names & set(self._cells):
            agent = fleet.agents.get(name)
            if agent is not None:
                self._replace(name, self._row_cells(fleet, agent, now))

    def _replace(self, name: str, cells: Cells) -> None:
        if self._cells.get(name) == cells:
            return
        self._cells[name] = cells
        self._strips.pop(name, None)
        row = self._index.get(name)
        if row is not None:
            self._refresh_row(row)

    def set_stale(self, stale: bool, fleet: FleetModel, now: float) -> None:
        """Draw the statuses as stale (disconnected) or live again."""
        if stale != self.stale:
            self.stale = stale
            self.set_class(stale, "-stale")
            self.sync(fleet, None, now)
            self.refresh()

    def set_empty_text(self, text: Text) -> None:
        if text != self.empty_text:
            self.empty_text = text
            if not self._order:
                self.refresh()

    def tick(self, fleet: FleetModel, now: float) -> None:
        """Advance the "Seen" column: only the rows whose text changes."""
        for name, cells in list(self._cells.items()):
            agent = fleet.agents.get(name)
            if agent is None:
                continue
            text = seen_text(agent, now)
            if text != cells[SEEN].plain:
                self._replace(name, (*cells[:SEEN], Text(text), *cells[SEEN + 1 :]))

    # -------------------------------------------------------------- cursor

    def _set_cursor(self, row: int) -> None:
        count = len(self._order)
        row = max(0, min(row, count - 1)) if count else 0
        name = self._order[row] if count else None
        if row != self._cursor:
            old = self._cursor
            self._cursor = row
            self._refresh_row(old)
            self._refresh_row(row)
        self._scroll_to_cursor()
        if name != self._cursor_name:
            self._cursor_name = name
            self.post_message(self.CursorMoved(self, name))

    def _refresh_row(self, row: int) -> None:
        self.refresh_line(row + 1)  # the header is line 0; refresh_line subtracts the scroll

    def _scroll_to_cursor(self) -> None:
        height = self.scrollable_content_region.height - 1  # below the header
        if height <= 0:
            return
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True, force=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True, force=True)

    def action_cursor(self, step: int) -> None:
        self._set_cursor(self._cursor + step)

    def action_cursor_down(self) -> None:
        self.action_cursor(1)

    def action_page(self, step: int) -> None:
        page = max(1, self.scrollable_content_region.height - 2)
        self._set_cursor(self._cursor + step * page)

    def action_cursor_to(self, row: int) -> None:
        self._set_cursor(row if row >= 0 else len(self._order) - 1)

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + int(self.scroll_y)
        if event.y >= 1 and 0 <= row < len(self._order):
            self._set_cursor(row)

    def on_resize(self) -> None:
        self._lay_out()
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self._refresh_row(self._cursor)

    def on_blur(self) -> None:
        self._refresh_row(self._cursor)

    # -------------------------------------------------------------- rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._header_style = None

    def _row_strip(self, cells: Cells, base: Style) -> Strip:
        line = Text(style=base, no_wrap=True, end="")
        widths = self._drawn_widths()
        for i, width in zip(self._shown, widths, strict=True):
            piece = cells[i].copy()
            piece.truncate(width, overflow="ellipsis", pad=True)
            line.append_text(piece)
            line.append(" " * GAP)
        # Rich renders a Text without spans (the header) with no style at all,
        # not the Text's own: the header lost its look, and NO_COLOR's
        # monochrome filter failed on the missing style.
        segments = Segment.apply_style(line.render(self.app.console), base)
        return Strip(list(segments), sum(widths) + GAP * len(widths))

    def _empty_line(self, index: int, width: int, base: Style) -> Strip:
        """A line of :attr:`empty_text`, wrapped to the width, one blank line below the header."""
        if index < 0 or width <= 2:
            return Strip.blank(width, base)
        lines = self.empty_text.wrap(self.app.console, width - 2)
        if index >= len(lines):
            return Strip.blank(width, base)
        text = Text(" ", style=base, end="")
        text.append_text(lines[index])
        return Strip(text.render(self.app.console)).crop_extend(0, width, base)

    def render_line(self, y: int) -> Strip:
        scroll_x = int(self.scroll_x)
        width = self.size.width
        base = self.rich_style
        if y == 0:
            if self._header_style is None:
                self._header_style = base + self.get_component_rich_style("agent-table--header")
            header = self._row_strip(tuple(Text(label) for label in self._labels), self._header_style)
            return header.crop_extend(scroll_x, scroll_x + width, self._header_style)
        row = y - 1 + int(self.scroll_y)
        if not self._order:
            return self._empty_line(y - 2, width, base)
        if row >= len(self._order):
            return Strip.blank(width, base)
        name = self._order[row]
        strip = self._strips.get(name)
        if strip is None:
            strip = self._strips[name] = self._row_strip(self._cells[name], base)
        if row == self._cursor:
            cursor = self.get_component_rich_style("agent-table--cursor")
            if not self.has_focus:
                cursor = Style(bgcolor=cursor.bgcolor, dim=True)
            strip = Strip(list(Segment.apply_style(strip, post_style=cursor)), strip.cell_length)
        return strip.crop_extend(scroll_x, scroll_x + width, base)
