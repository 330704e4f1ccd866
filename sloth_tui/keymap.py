"""Every key binding of the console, as data.

Widgets and screens take their ``BINDINGS`` from here, the help screen and
the command palette are generated from it, and every binding has an ``id``
so that keys can be remapped (``App.set_keymap``) without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class KeySpec:
    """One action and the keys that trigger it in one context."""

    id: str
    context: str
    keys: str
    """Textual key names, comma separated (the first is shown)."""
    action: str
    """The action as bound in its context (``screen.`` reaches the screen)."""
    description: str
    show: bool = False
    """Shown in the footer."""
    key_display: str | None = None
    palette: bool = True
    """Offered in the command palette."""
    builtin: bool = False
    """Handled by the widget itself: documented here, not bound again."""
    priority: bool = False
    group: str | None = None
    """Footer group: keys sharing one description."""
    short: str | None = None
    """The footer's label, when the description is too long for it."""

    @property
    def display_keys(self) -> str:
        if self.key_display:
            return self.key_display
        return " ".join(_KEY_NAMES.get(k, k) for k in self.keys.split(","))


_KEY_NAMES = {
    "question_mark": "?",
    "colon": ":",
    "greater_than_sign": ">",
    "slash": "/",
    "space": "space",
    "escape": "esc",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "ctrl+p": "^p",
    "ctrl+q": "^q",
}

CONTEXTS: dict[str, str] = {
    "app": "Anywhere",
    "fleet": "Main screen",
    "table": "Agent table",
    "pane": "Output pane",
    "prompt": "Command prompt",
    "filter": "Filter",
    "history": "Run history",
    "confirm": "Confirmation dialog",
    "help": "Help",
}

_SORT = "Sort"

KEYMAP: tuple[KeySpec, ...] = (
    # ------------------------------------------------------------ anywhere
    KeySpec("app.quit", "app", "q,ctrl+q", "quit", "Quit", show=True, key_display="q"),
    KeySpec("app.help", "app", "question_mark", "help", "Help", show=True),
    KeySpec(
        "app.palette", "app", "ctrl+p", "command_palette", "Command palette (every action)", short="Palette",
        priority=True, palette=False,
    ),
    # ------------------------------------------------------------ main screen
    KeySpec(
        "fleet.prompt", "fleet", "colon,greater_than_sign", "focus_prompt",
        "Command", show=True, key_display=":",
    ),
    KeySpec("fleet.filter", "fleet", "slash", "focus_filter", "Filter", show=True),
    KeySpec("fleet.history", "fleet", "h", "history", "History", show=True),
    KeySpec("fleet.next_failed", "fleet", "n", "next_failed", "Next failed agent of the job", show=True,
            short="Next failed"),
    KeySpec("fleet.next_agent", "fleet", "right_square_bracket", "job_agent(1)", "Next agent of the job"),
    KeySpec("fleet.prev_agent", "fleet", "left_square_bracket", "job_agent(-1)", "Previous agent of the job"),
    KeySpec("fleet.cancel_run", "fleet", "c", "cancel_run", "Cancel the run shown", show=True, short="Cancel"),
    KeySpec("fleet.cancel_job", "fleet", "C", "cancel_job", "Cancel the whole job"),
    KeySpec("fleet.rerun_job", "fleet", "R", "rerun_job", "Re-run the job on the same agents"),
    KeySpec("fleet.zoom", "fleet", "z", "zoom", "Zoom the output pane"),
    KeySpec("fleet.focus", "fleet", "tab", "focus_next", "Switch between table and output", builtin=True),
    # ------------------------------------------------------------ agent table
    KeySpec("table.mark", "table", "space", "screen.mark", "Mark", show=True),
    KeySpec("table.mark_all", "table", "a", "screen.mark_all", "Mark all visible", show=True, short="All"),
    KeySpec("table.clear_marks", "table", "u", "screen.clear_marks", "Clear marks"),
    KeySpec("table.open", "table", "enter", "screen.open_agent", "Open the agent's output"),
    KeySpec("table.sort_name", "table", "N", "screen.sort('name')", "Sort by name", group=_SORT),
    KeySpec("table.sort_status", "table", "S", "screen.sort('status')", "Sort by status", group=_SORT),
    KeySpec("table.sort_address", "table", "A", "screen.sort('address')", "Sort by address", group=_SORT),
    KeySpec("table.sort_version", "table", "V", "screen.sort('version')", "Sort by version", group=_SORT),
    KeySpec("table.sort_seen", "table", "L", "screen.sort('last_seen')", "Sort by last seen", group=_SORT),
    KeySpec("table.sort_running", "table", "I", "screen.sort('running')", "Sort by runs in flight", group=_SORT),
    KeySpec("table.stop", "table", "x", "screen.stop_agent", "Stop the agent"),
    KeySpec("table.delete", "table", "D", "screen.delete_agent", "Delete the agent"),
    KeySpec("table.clear_filter", "table", "escape", "screen.clear_filter", "Clear the filter"),
    KeySpec("table.up", "table", "up,k", "cursor(-1)", "Cursor up", key_display="↑ k", palette=False),
    KeySpec("table.down", "table", "down,j", "cursor(1)", "Cursor down", key_display="↓ j", palette=False),
    KeySpec("table.page_up", "table", "pageup", "page(-1)", "Page up", palette=False),
    KeySpec("table.page_down", "table", "pagedown", "page(1)", "Page down", palette=False),
    KeySpec("table.first", "table", "home,g", "cursor_to(0)", "First agent", key_display="home g", palette=False),
    KeySpec("table.last", "table", "end,G", "cursor_to(-1)", "Last agent", key_display="end G", palette=False),
    # ------------------------------------------------------------ output pane
    KeySpec("pane.follow", "pane", "f,end", "follow", "Follow", show=True),
    KeySpec("pane.top", "pane", "g,home", "scroll_top", "Top"),
    KeySpec("pane.back", "pane", "escape", "screen.focus_table", "Back to the table", show=True),
    KeySpec("pane.scroll", "pane", "up,down,pageup,pagedown", "scroll", "Scroll (stops following)",
            builtin=True, key_display="↑ ↓ pgup pgdn"),
    # ------------------------------------------------------------ prompt
    KeySpec("prompt.run", "prompt", "enter", "submit", "Run on the targets", builtin=True),
    KeySpec("prompt.previous", "prompt", "up", "history_previous", "Previous command", show=True,
            palette=False),
    KeySpec("prompt.next", "prompt", "down", "history_next", "Next command", show=True, palette=False),
    KeySpec("prompt.back", "prompt", "escape", "screen.focus_table", "Back to the table", show=True,
            palette=False),
    # ------------------------------------------------------------ filter
    KeySpec("filter.keep", "filter", "enter", "submit", "Keep the filter, back to the table",
            builtin=True),
    KeySpec("filter.clear", "filter", "escape", "screen.clear_filter", "Clear the filter", show=True,
            palette=False),
    # ------------------------------------------------------------ history
    KeySpec("history.replay", "history", "enter", "replay", "Replay", show=True),
    KeySpec("history.rerun", "history", "r", "rerun", "Re-run on this agent", show=True),
    KeySpec("history.cancel", "history", "c", "cancel_run", "Cancel run", show=True),
    KeySpec("history.close", "history", "escape", "close", "Back", show=True),
    # ------------------------------------------------------------ dialogs
    KeySpec("confirm.yes", "confirm", "y", "confirm", "Yes", show=True, palette=False),
    KeySpec("confirm.no", "confirm", "n,escape", "cancel", "No", show=True, palette=False),
    KeySpec("confirm.press", "confirm", "enter", "press", "Press the focused button", builtin=True,
            palette=False),
    KeySpec("help.close", "help", "escape,question_mark,q", "close", "Close", show=True,
            palette=False),
)

_BY_ID = {spec.id: spec for spec in KEYMAP}


def spec(binding_id: str) -> KeySpec:
    return _BY_ID[binding_id]


def specs(context: str) -> list[KeySpec]:
    return [s for s in KEYMAP if s.context == context]


def bindings(context: str) -> list[Binding]:
    """Textual bindings for ``context`` (builtins are left to their widgets)."""
    return [
        Binding(
            s.keys,
            s.action,
            s.short or s.description,
            show=s.show or s.group is not None,
            key_display=s.key_display,
            priority=s.priority,
            id=s.id,
            group=Binding.Group(s.group, compact=True) if s.group else None,
        )
        for s in specs(context)
        if not s.builtin
    ]
