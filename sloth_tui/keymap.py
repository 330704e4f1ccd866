"""Every key binding of the console, as data.

Widgets and screens take their ``BINDINGS`` from here, the help screen and
the command palette are generated from it, and every binding has an ``id``
so that keys can be remapped (``App.set_keymap``) without touching code.
Each spec names its target (Harlequin's way): ``app``, ``screen``, or the
widget type that owns the action, so the palette runs it where a key would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class KeySpec:
    """One action and the keys that trigger it in one context."""

    id: str
    context: str
    target: str
    """Who runs the action: ``app``, ``screen``, or a widget type (``OutputLog``)."""
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
    "ctrl+c": "^c",
}

CONTEXTS: dict[str, str] = {
    "app": "Anywhere",
    "fleet": "Main screen",
    "table": "Agent table",
    "pane": "Output pane",
    "prompt": "Command prompt",
    "filter": "Filter",
    "history": "Run history",
    "runs": "Run list",
    "confirm": "Confirmation dialog",
    "help": "Help",
    "details": "Agent details",
}

_SORT = "Sort"


def _in(context: str, target: str) -> Callable[..., KeySpec]:
    """Specs of one context, all aimed at ``target``."""

    def make(id: str, keys: str, action: str, description: str, **options: object) -> KeySpec:
        return KeySpec(id, context, target, keys, action, description, **options)  # type: ignore[arg-type]

    return make


_app = _in("app", "app")
_fleet = _in("fleet", "screen")
_table = _in("table", "AgentTable")
_pane = _in("pane", "OutputLog")
_prompt = _in("prompt", "PromptInput")
_filter = _in("filter", "FilterInput")
_history = _in("history", "screen")
_runs = _in("runs", "HistoryTable")
_confirm = _in("confirm", "screen")
_help = _in("help", "screen")
_details = _in("details", "screen")

KEYMAP: tuple[KeySpec, ...] = (
    # ------------------------------------------------------------ anywhere
    _app("app.quit", "q", "quit", "Quit (asks first while runs started here are in flight)", short="Quit",
         show=True),
    # Ctrl-C quits too, as in every terminal program, with the same question.
    # The inputs bind it as well (over their "copy"), so it works while typing.
    _app("app.interrupt", "ctrl+c,ctrl+q", "interrupt", "Quit, also while typing", key_display="^c ^q",
         palette=False),
    _app("app.help", "question_mark", "help", "Help", show=True),
    _app("app.palette", "ctrl+p", "command_palette", "Command palette (every action)", short="Palette",
         priority=True, palette=False),
    # ------------------------------------------------------------ main screen
    _fleet("fleet.prompt", "colon,greater_than_sign", "focus_prompt", "Command prompt", short="Run", show=True,
           key_display=":"),
    _fleet("fleet.filter", "slash", "focus_filter", "Filter", show=True),
    _fleet("fleet.history", "h", "history", "History", show=True),
    _fleet("fleet.next_failed", "n", "next_failed", "Next failed agent of the job", show=True,
           short="Failed"),
    _fleet("fleet.next_agent", "right_square_bracket", "job_agent(1)", "Next agent of the job"),
    _fleet("fleet.prev_agent", "left_square_bracket", "job_agent(-1)", "Previous agent of the job"),
    _fleet("fleet.cancel_run", "c", "cancel_run", "Cancel the run shown", show=True, short="Cancel"),
    _fleet("fleet.cancel_job", "C", "cancel_job", "Cancel the whole job"),
    _fleet("fleet.rerun_job", "R", "rerun_job", "Re-run the job on the same agents, with its options"),
    _fleet("fleet.zoom", "z", "zoom", "Zoom the output pane"),
    _fleet("fleet.wrap", "w", "toggle_wrap", "Wrap long output lines (on by default) or scroll them"),
    _fleet("fleet.focus", "tab", "focus_next", "Switch between table and output", builtin=True),
    # ------------------------------------------------------------ agent table
    _table("table.mark", "space", "screen.mark", "Mark", show=True),
    _table("table.mark_all", "a", "screen.mark_all", "Mark all visible", short="All"),
    _table("table.clear_marks", "u", "screen.clear_marks", "Clear marks"),
    _table("table.open", "enter", "screen.open_agent", "Open the agent's output"),
    _table("table.shell", "s", "screen.open_shell", "Shell on the agent (agent shell, admins)", short="Shell",
           show=True),
    _table("table.sort_name", "N", "screen.sort('name')", "Sort by name", group=_SORT),
    _table("table.sort_status", "S", "screen.sort('status')", "Sort by status", group=_SORT),
    _table("table.sort_address", "A", "screen.sort('address')", "Sort by address", group=_SORT),
    _table("table.sort_version", "V", "screen.sort('version')", "Sort by version", group=_SORT),
    _table("table.sort_seen", "L", "screen.sort('last_seen')", "Sort by last seen", group=_SORT),
    _table("table.sort_running", "I", "screen.sort('running')", "Sort by runs in flight", group=_SORT),
    _table("table.sort_cpu", "P", "screen.sort('cpu')", "Sort by CPU (load per core)", group=_SORT),
    _table("table.sort_mem", "M", "screen.sort('mem')", "Sort by memory used", group=_SORT),
    _table("table.sort_disk", "F", "screen.sort('disk')", "Sort by disk used", group=_SORT),
    _table("table.describe", "d", "screen.describe_agent", "Describe the agent: all its facts"),
    _table("table.stop", "x", "screen.stop_agent", "Stop the agent"),
    _table("table.delete", "D", "screen.delete_agent", "Delete the agent (revokes its certificate)"),
    _table("table.clear_filter", "escape", "screen.clear_filter", "Clear the filter"),
    _table("table.up", "up,k", "cursor(-1)", "Cursor up", key_display="↑ k", palette=False),
    _table("table.down", "down,j", "cursor(1)", "Cursor down", key_display="↓ j", palette=False),
    _table("table.page_up", "pageup", "page(-1)", "Page up", palette=False),
    _table("table.page_down", "pagedown", "page(1)", "Page down", palette=False),
    _table("table.first", "home,g", "cursor_to(0)", "First agent", key_display="home g", palette=False),
    _table("table.last", "end,G", "cursor_to(-1)", "Last agent", key_display="end G", palette=False),
    # ------------------------------------------------------------ output pane
    _pane("pane.follow", "f,end", "follow", "Follow", show=True),
    _pane("pane.top", "g,home", "scroll_top", "Top"),
    _pane("pane.wrap", "w", "toggle_wrap", "Wrap long lines or scroll them", short="Wrap", show=True),
    _pane("pane.back", "escape", "screen.focus_table", "Back to the table", show=True, short="Back"),
    _pane("pane.scroll", "up,down,pageup,pagedown", "scroll", "Scroll (stops following)",
          builtin=True, key_display="↑ ↓ pgup pgdn"),
    # ------------------------------------------------------------ prompt
    _prompt("prompt.run", "enter", "submit", "Run on the targets", builtin=True),
    _prompt("prompt.previous", "up", "history_previous", "Previous command", short="Previous", show=True,
            palette=False),
    _prompt("prompt.next", "down", "history_next", "Next command", short="Next", show=True, palette=False),
    _prompt("prompt.back", "escape", "screen.focus_table", "Back to the table", short="Back", show=True,
            palette=False),
    _prompt("prompt.quit", "ctrl+c", "app.interrupt", "Quit", show=True, palette=False),
    # ------------------------------------------------------------ filter
    _filter("filter.keep", "enter", "submit", "Keep the filter, back to the table", builtin=True),
    _filter("filter.clear", "escape", "screen.clear_filter", "Clear the filter", show=True, palette=False),
    _filter("filter.quit", "ctrl+c", "app.interrupt", "Quit", show=True, palette=False),
    # ------------------------------------------------------------ history
    _history("history.replay", "enter", "replay", "Replay", show=True),
    _history("history.rerun", "r", "rerun", "Re-run on this agent (a shell: open it again)", show=True,
             short="Re-run"),
    _history("history.cancel", "c", "cancel_run", "Cancel run", show=True, short="Cancel"),
    _history("history.wrap", "w", "toggle_wrap", "Wrap long output lines or scroll them"),
    _history("history.close", "escape", "close", "Back", show=True),
    _runs("runs.up", "k", "cursor_up", "Previous run", key_display="↑ k", palette=False),
    _runs("runs.down", "j", "cursor_down", "Next run", key_display="↓ j", palette=False),
    _runs("runs.first", "g", "scroll_top", "Newest run", key_display="home g", palette=False),
    _runs("runs.last", "G", "scroll_bottom", "Oldest run", key_display="end G", palette=False),
    # ------------------------------------------------------------ dialogs
    _confirm("confirm.yes", "y", "confirm", "Yes", show=True, palette=False),
    _confirm("confirm.no", "n,escape", "cancel", "No", show=True, palette=False),
    _confirm("confirm.press", "enter", "press", "Press the focused button", builtin=True, palette=False),
    _help("help.close", "escape,question_mark,q", "close", "Close", show=True, palette=False),
    _details("details.close", "escape,d,q", "close", "Close", show=True, palette=False),
)


def specs(context: str) -> list[KeySpec]:
    return [s for s in KEYMAP if s.context == context]


def bindings(context: str) -> list[Binding]:
    """Textual bindings for ``context`` (builtins are left to their widgets)."""
    return [
        Binding(
            s.keys,
            s.action,
            s.short or s.description,
            show=s.show,
            key_display=s.key_display,
            priority=s.priority,
            id=s.id,
            group=Binding.Group(s.group, compact=True) if s.group else None,
        )
        for s in specs(context)
        if not s.builtin
    ]
