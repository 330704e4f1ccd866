"""The command prompt and the line above it that names its targets."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from sloth_tui import keymap
from sloth_tui.model import fmt


def targets_text(targets: list[str], marked: bool, hidden: int = 0) -> Text:
    """``→ 3 marked: web-1, web-2, db-1``, ``→ web-1`` or why there is none.

    ``hidden``: how many of the marked targets the filter hides. They still
    receive the command, so the prompt says so before anything runs.
    """
    if not targets:
        return Text("→ no target: move to an agent, or mark some with space", style="yellow")
    if len(targets) == 1 and not marked:
        return Text.assemble(("→ ", "bold"), (targets[0], "bold"))
    count = f"{len(targets):,} marked" if marked else fmt.plural(len(targets), "agent")
    text = Text.assemble(("→ ", "bold"), (count, "bold magenta" if marked else "bold"))
    if hidden:
        text.append(f" ({hidden:,} hidden by the filter)", "bold yellow")
    text.append(": ")
    text.append(fmt.name_list(targets, limit=6))
    return text


class PromptInput(Input):
    """A single-line command input with history recall.

    A paste of several lines keeps only the first (the prompt runs one line,
    and a stray newline must not send half a script to a fleet); it posts
    :class:`PastedLines` so the screen can say so.
    """

    BINDINGS = keymap.bindings("prompt")

    class Recall(Message):
        """Up or down was pressed: the screen fills in a history entry."""

        def __init__(self, prompt: PromptInput, step: int) -> None:
            super().__init__()
            self.prompt = prompt
            self.step = step

    class PastedLines(Message):
        """A paste of ``count`` non-empty lines was cut to its first line."""

        def __init__(self, prompt: PromptInput, count: int) -> None:
            super().__init__()
            self.prompt = prompt
            self.count = count

    def action_history_previous(self) -> None:
        self.post_message(self.Recall(self, -1))

    def action_history_next(self) -> None:
        self.post_message(self.Recall(self, 1))

    def _on_paste(self, event: events.Paste) -> None:
        # Runs before Input's own handler, which then inserts what is left in ``event.text``.
        lines = [line for line in event.text.splitlines() if line.strip()]
        if len(lines) > 1:
            self.post_message(self.PastedLines(self, len(lines)))
        if lines:
            event.text = lines[0]


class PromptBar(Vertical):
    """Targets on top, the input below."""

    def compose(self) -> ComposeResult:
        yield Static(id="targets", classes="targets")
        yield PromptInput(placeholder="command to run on the targets (Enter runs, ↑↓ history)", id="prompt")

    def set_targets(self, targets: list[str], marked: bool, hidden: int = 0, note: Text | None = None) -> None:
        text = targets_text(targets, marked, hidden)
        if note is not None:
            text = Text.assemble(note, "\n", text)
        text.no_wrap, text.overflow = True, "ellipsis"
        self.query_one("#targets", Static).update(text)
