"""The footer of the main screens: the keys of what has focus, and the palette hint when there is room."""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.widget import Widget
from textual.widgets import Footer

PALETTE_HINT_MIN_WIDTH = 100
"""Narrower than this, the keys themselves need the room; help (?) still names ^p."""


class KeysFooter(Footer):
    """Textual's compact footer, leaving out the ``^p Palette`` hint on narrow terminals."""

    def __init__(self) -> None:
        super().__init__(compact=True)

    def compose(self) -> Iterable[Widget]:  # type: ignore[override]
        self.show_command_palette = self.app.size.width >= PALETTE_HINT_MIN_WIDTH
        yield from super().compose()

    def on_resize(self, event: events.Resize) -> None:
        if (self.app.size.width >= PALETTE_HINT_MIN_WIDTH) != self.show_command_palette:
            self.call_after_refresh(self.recompose)
