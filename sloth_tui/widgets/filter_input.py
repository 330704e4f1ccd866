"""The filter line above the agent table (``/`` opens it)."""

from __future__ import annotations

from textual.widgets import Input

from sloth_tui import keymap


class FilterInput(Input):
    """Filters the table as you type: words, ``status:offline``, ``label:role=web``."""

    BINDINGS = keymap.bindings("filter")
