"""``?``: every binding, grouped by where it applies, generated from the keymap."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sloth_tui import keymap


def help_table(first: list[str]) -> Table:
    """A table of the keymap; the contexts in ``first`` (the active ones) lead."""
    order = [c for c in first if c in keymap.CONTEXTS]
    order += [c for c in keymap.CONTEXTS if c not in order]
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    for context in order:
        specs = keymap.specs(context)
        if not specs:
            continue
        title = keymap.CONTEXTS[context] + ("  (here now)" if context in first else "")
        table.add_row("", Text(title, style="bold underline"))
        for spec in specs:
            table.add_row(Text(spec.display_keys, style="bold cyan"), spec.description)
        table.add_row("", "")
    table.add_row(
        "",
        Text(
            "Filter syntax: words match name, address, labels, version; "
            "status:offline; label:role=web; load>2 cpu>70 mem>80 disk>90 (also < >= <=); "
            "all terms must match.",
            style="dim",
        ),
    )
    table.add_row(
        "",
        Text(
            "Prompt: --env KEY=VALUE and --cwd DIR before the command set its environment and "
            "directory, as in `agent run` (--cwd /srv/app --env RELEASE=42 ./deploy.sh).",
            style="dim",
        ),
    )
    return table


class HelpScreen(ModalScreen[None]):
    """Lists every key binding; the active contexts come first."""

    BINDINGS = keymap.bindings("help")

    def __init__(self, active_contexts: list[str]) -> None:
        super().__init__()
        self.active_contexts = active_contexts

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text("sloth-runner console — keys", style="bold"), id="help-title")
            yield Static(help_table(self.active_contexts))

    def action_close(self) -> None:
        self.dismiss(None)
