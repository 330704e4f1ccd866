"""Lines of items that wrap between items, never inside one (summaries, the status bar)."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text


def flow_lines(items: list[Text], width: int, separator: str = "  ") -> list[Text]:
    """Pack ``items`` into lines of at most ``width`` cells, breaking only between items.

    An item wider than a whole line gets a line of its own, cut with an ellipsis.
    """
    lines: list[Text] = []
    line = Text()
    for item in items:
        if not item.plain:
            continue
        if line.plain and line.cell_len + len(separator) + item.cell_len > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(separator)
        line.append_text(item)
    if line.plain:
        lines.append(line)
    for text in lines:
        text.truncate(max(1, width), overflow="ellipsis")
    return lines


class Flow:
    """A rich renderable: ``items`` flowed to the width it is given."""

    def __init__(self, items: list[Text], separator: str = "  ") -> None:
        self.items = items
        self.separator = separator

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = flow_lines(self.items, options.max_width, self.separator)
        text = Text("\n").join(lines)
        text.no_wrap = True
        text.overflow = "ellipsis"
        yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((item.cell_len for item in self.items), default=0)
        total = sum(item.cell_len for item in self.items) + len(self.separator) * max(0, len(self.items) - 1)
        return Measurement(min(widest, options.max_width), min(total, options.max_width))
