"""A line view over a run's buffer: fast, capped, stderr in its own colour.

It renders straight from :class:`~sloth_tui.model.runs.RunView` (no copy of
the lines), so switching between agents is instant and a 100,000-line run
costs only the lines on screen. It follows the tail until the operator
scrolls up, and counts the lines that arrive meanwhile.

Long lines wrap by default (``w`` toggles to one row per line with
horizontal scrolling). Wrapping keeps, per kept line, the row it starts on,
extended as lines arrive and trimmed as the buffer drops its head, so a
frame costs only the rows on screen; a new width recounts once.
"""

from __future__ import annotations

import time
from bisect import bisect_right

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from sloth_tui import keymap
from sloth_tui.model.runs import NOTICE, STDERR, RunView, text_width

REDRAW_S = 0.05


class OutputLog(ScrollView, can_focus=True):
    """Output of one run at a time."""

    BINDINGS = keymap.bindings("pane")
    COMPONENT_CLASSES = {"output-log--stderr", "output-log--notice"}

    class FollowChanged(Message):
        """Following the tail started or stopped, or unseen lines piled up."""

        def __init__(self, log: OutputLog, follow: bool, unseen: int) -> None:
            super().__init__()
            self.log = log
            self.follow = follow
            self.unseen = unseen

        @property
        def control(self) -> OutputLog:
            return self.log

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.run: RunView | None = None
        self.follow = True
        self.unseen = 0
        self._dropped_seen = 0
        self._styles: dict[int, Style] = {}
        self._pending = 0
        self._redraw_timer: Timer | None = None
        self._last_redraw = 0.0
        self.wrap = True
        # Wrapping: the absolute row each kept line starts on, the absolute
        # row of the first kept line, and the row after the last one.
        self._starts: list[int] = []
        self._base = 0
        self._end = 0
        self._rows_width = 0
        self._rows_dropped = 0
        self._rows_run: RunView | None = None
        self._rows_resets = 0

    class WrapChanged(Message):
        """Wrapping was switched on or off."""

        def __init__(self, log: OutputLog, wrap: bool) -> None:
            super().__init__()
            self.log = log
            self.wrap = wrap

        @property
        def control(self) -> OutputLog:
            return self.log

    # -------------------------------------------------------------- feeding

    def show(self, run: RunView | None) -> None:
        """Display ``run`` from its tail, following it."""
        same = run is self.run
        self.run = run
        if not same:
            self._pending = 0
            if self._redraw_timer is not None:
                self._redraw_timer.stop()
                self._redraw_timer = None
        if not same:
            self._dropped_seen = run.dropped_lines if run else 0
            self._set_follow(True, 0)
        self._sync_size()
        if self.follow:
            self._scroll_to_end()
        self.refresh()

    def lines_added(self, count: int) -> None:
        """The shown run grew by ``count`` lines (or its last line grew).

        Drawn at most ``REDRAW_S`` apart: a fast stream moves the view 20
        times a second rather than every frame, which leaves the UI loop free.
        """
        self._pending += count
        if self._redraw_timer is not None:
            return
        wait = self._last_redraw + REDRAW_S - time.monotonic()
        if wait <= 0:
            self._redraw()
        else:
            self._redraw_timer = self.set_timer(wait, self._redraw)

    def _redraw(self) -> None:
        self._redraw_timer = None
        self._last_redraw = time.monotonic()
        count, self._pending = self._pending, 0
        run = self.run
        if run is None:
            return
        base = self._base
        if run.dropped_lines != self._dropped_seen:
            shift = run.dropped_lines - self._dropped_seen
            self._dropped_seen = run.dropped_lines
            self._sync_size()
            if self._wrapping:
                shift = self._base - base
            if not self.follow:
                # Keep the same lines under the operator's eyes.
                self.scroll_to(y=max(0, self.scroll_y - shift), animate=False, immediate=True, force=True)
        self._sync_size()
        if self.follow:
            self._scroll_to_end()
        elif count:
            self._set_follow(False, self.unseen + count)
        self.refresh()

    def _sync_size(self) -> None:
        run = self.run
        if run is None:
            size = Size(0, 0)
        elif self._wrapping:
            self._sync_rows(run)
            size = Size(self._rows_width, self._end - self._base)
        else:
            size = Size(run.width, len(run.lines))
        if size != self.virtual_size:
            self.virtual_size = size

    # -------------------------------------------------------------- wrapping

    @property
    def _wrapping(self) -> bool:
        return self.wrap and self.scrollable_content_region.width > 0

    def _sync_rows(self, run: RunView) -> None:
        """Bring the row index up to date with ``run``'s buffer (see the module doc)."""
        width = self.scrollable_content_region.width
        starts = self._starts
        lines = run.lines
        dropped = run.dropped_lines - self._rows_dropped
        if (
            run is not self._rows_run
            or run.resets != self._rows_resets
            or width != self._rows_width
            or dropped < 0
            or dropped > len(starts)
            or len(lines) < len(starts) - dropped
        ):
            starts.clear()
            self._base = self._end = 0
            self._rows_run, self._rows_width, self._rows_resets, dropped = run, width, run.resets, 0
        if dropped:
            self._base = starts[dropped] if dropped < len(starts) else self._end
            del starts[:dropped]
        self._rows_dropped = run.dropped_lines
        count = len(starts)
        end = starts[-1] + _rows(lines[count - 1], width) if count else self._base
        for line in lines[count:] if count < len(lines) else ():
            starts.append(end)
            end += _rows(line, width)
        self._end = end

    def action_toggle_wrap(self) -> None:
        """Wrap long lines, or show each on one row with horizontal scrolling."""
        top = self._line_at(int(self.scroll_y))
        self.wrap = not self.wrap
        self._rows_run = None
        self._sync_size()
        self.post_message(self.WrapChanged(self, self.wrap))
        if self.follow:
            self._scroll_to_end()
        elif top is not None:
            row = self._starts[top] - self._base if self._wrapping else top
            self.scroll_to(y=row, animate=False, immediate=True, force=True)
        self.refresh()

    def _line_at(self, row: int) -> int | None:
        """The index of the line drawn on ``row`` (a row of the whole view)."""
        run = self.run
        if run is None or not run.lines:
            return None
        if not self._wrapping:
            return min(row, len(run.lines) - 1)
        return max(0, bisect_right(self._starts, row + self._base) - 1)

    def on_resize(self) -> None:
        if self.wrap and self.run is not None:
            self._sync_size()
            if self.follow:
                self._scroll_to_end()
            self.refresh()

    def _scroll_to_end(self) -> None:
        # force: right after the run changed, the scrollbars of the new size
        # are not laid out yet and a plain scroll would be refused.
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _set_follow(self, follow: bool, unseen: int) -> None:
        if (follow, unseen) != (self.follow, self.unseen):
            self.follow, self.unseen = follow, unseen
            self.post_message(self.FollowChanged(self, follow, unseen))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_end = new_value >= self.max_scroll_y
        if at_end and not self.follow:
            self._set_follow(True, 0)
        elif not at_end and self.follow and new_value < old_value:
            self._set_follow(False, 0)

    # The scroll keys act at once (Textual animates them): an animated page-up
    # could be overtaken by the next redraw of a following view.

    def _scroll_by(self, lines: int) -> None:
        target = max(0, min(self.max_scroll_y, int(self.scroll_y) + lines))
        self.scroll_to(y=target, animate=False, immediate=True, force=True)

    def action_scroll_up(self) -> None:
        self._scroll_by(-1)

    def action_scroll_down(self) -> None:
        self._scroll_by(1)

    def action_page_up(self) -> None:
        self._scroll_by(-max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self._scroll_by(max(1, self.scrollable_content_region.height - 1))

    def action_follow(self) -> None:
        self._set_follow(True, 0)
        self._scroll_to_end()

    def action_scroll_top(self) -> None:
        self._set_follow(False, self.unseen)
        self.scroll_home(animate=False, immediate=True, x_axis=False, force=True)

    # -------------------------------------------------------------- rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, kind: int) -> Style:
        style = self._styles.get(kind)
        if style is None:
            base = self.rich_style
            if kind == STDERR:
                base = base + self.get_component_rich_style("output-log--stderr")
            elif kind == NOTICE:
                base = base + self.get_component_rich_style("output-log--notice")
            style = self._styles[kind] = base
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        run = self.run
        if run is not None and self._wrapping and self._rows_run is run:
            return self._render_wrapped(run, scroll_y + y, width)
        index = scroll_y + y
        if run is None or index >= len(run.lines):
            return Strip.blank(width, self.rich_style)
        line = run.lines[index]
        strip = Strip([Segment(line, self._style(run.kinds[index]))], text_width(line))
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _render_wrapped(self, run: RunView, row: int, width: int) -> Strip:
        absolute = row + self._base
        if row < 0 or absolute >= self._end:
            return Strip.blank(width, self.rich_style)
        index = bisect_right(self._starts, absolute) - 1
        if index >= len(run.lines):
            # The buffer was reset (a replay starts over) and the rows are not recounted yet.
            return Strip.blank(width, self.rich_style)
        line = run.lines[index]
        step = self._rows_width
        start = (absolute - self._starts[index]) * step
        style = self._style(run.kinds[index])
        if line.isascii():
            piece = line[start : start + step]
            strip = Strip([Segment(piece, style)], len(piece))
        else:
            strip = Strip([Segment(line, style)], cell_len(line)).crop(start, start + step)
        return strip.crop_extend(0, width, self.rich_style)


def _rows(line: str, width: int) -> int:
    """Rows ``line`` takes when wrapped at ``width`` cells (an empty line takes one)."""
    cells = len(line) if line.isascii() else cell_len(line)
    return max(1, -(-cells // width))
