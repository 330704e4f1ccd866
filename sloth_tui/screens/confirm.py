"""A yes/no dialog that states exactly what is about to happen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import HorizontalGroup, VerticalGroup
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from sloth_tui import keymap


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True when the operator confirms."""

    BINDINGS = keymap.bindings("confirm")

    def __init__(self, title: str, body: Text | str, *, yes: str = "Yes", danger: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes_label = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with VerticalGroup(id="dialog"):
            yield Static(Text(self.title_text), id="dialog-title")
            yield Static(Text(self.body) if isinstance(self.body, str) else self.body, id="dialog-body")
            with HorizontalGroup(id="dialog-buttons"):
                yield Button(
                    f"{self.yes_label} (y)", variant="error" if self.danger else "primary", id="yes"
                )
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
