"""The command prompt and the line above it that names its targets."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from sloth_tui import keymap
from sloth_tui.model import fmt


def targets_text(targets: list[str], marked: bool) -> Text:
    """``→ 3 agents: web-1, web-2, db-1``, ``→ web-1`` or why there is none."""
    if not targets:
        return Text("→ no target: move to an agent, or mark some with space", style="yellow")
    if len(targets) == 1 and not marked:
        return Text.assemble(("→ ", "bold"), (targets[0], "bold"))
    return Text.assemble(
        ("→ ", "bold"),
        (fmt.plural(len(targets), "agent"), "bold magenta" if marked else "bold"),
        ": ",
        fmt.name_list(targets, limit=6),
    )


class PromptInput(Input):
    """A single-line command input with history recall."""

    BINDINGS = keymap.bindings("prompt")

    class Recall(Message):
        """Up or down was pressed: the screen fills in a history entry."""

        def __init__(self, prompt: PromptInput, step: int) -> None:
            super().__init__()
            self.prompt = prompt
            self.step = step

    def action_history_previous(self) -> None:
        self.post_message(self.Recall(self, -1))

    def action_history_next(self) -> None:
        self.post_message(self.Recall(self, 1))


class PromptBar(Vertical):
    """Targets on top, the input below."""

    def compose(self) -> ComposeResult:
        yield Static(id="targets", classes="targets")
        yield PromptInput(
            placeholder="command to run on the targets (Enter runs, ↑↓ history, Esc back)",
            id="prompt",
        )

    def set_targets(self, targets: list[str], marked: bool) -> None:
        self.query_one("#targets", Static).update(targets_text(targets, marked))
