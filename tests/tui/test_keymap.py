"""The keymap is data the app, the footer, the help and the palette all read: it must hold together."""

from __future__ import annotations

import inspect

from textual.widget import Widget

from sloth_tui import keymap
from sloth_tui.app import SlothApp, create_app
from sloth_tui.screens.agent_details import AgentDetailsScreen
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.fleet import FleetScreen
from sloth_tui.screens.help import HelpScreen
from sloth_tui.screens.history import HistoryScreen, HistoryTable
from sloth_tui.widgets.agent_table import AgentTable
from sloth_tui.widgets.filter_input import FilterInput
from sloth_tui.widgets.output_log import OutputLog
from sloth_tui.widgets.prompt import PromptInput

OWNERS: dict[str, type] = {
    "app": SlothApp, "fleet": FleetScreen, "history": HistoryScreen, "confirm": ConfirmScreen, "help": HelpScreen,
    "details": AgentDetailsScreen,
}
WIDGETS: dict[str, type[Widget]] = {
    cls.__name__: cls for cls in (AgentTable, OutputLog, PromptInput, FilterInput, HistoryTable)
}


def test_every_spec_names_a_target_that_has_its_action() -> None:
    for spec in keymap.KEYMAP:
        if spec.builtin:
            continue
        owner = WIDGETS.get(spec.target) or OWNERS[spec.context]
        ids = {b.id for b in owner.BINDINGS}  # type: ignore[attr-defined]
        assert spec.id in ids, f"{spec.id} is not bound on {owner.__name__}"
        namespace, _, name = spec.action.rpartition(".")
        screen = HistoryScreen if spec.context == "runs" else OWNERS.get(spec.context, FleetScreen)
        holder = {"screen": screen, "app": SlothApp}.get(namespace, owner)
        method = "action_" + name.split("(")[0]
        assert hasattr(holder, method), f"{spec.id}: {holder.__name__} has no {method}"


def test_create_app_forwards_every_option_of_the_app() -> None:
    app_options = list(inspect.signature(SlothApp.__init__).parameters)[1:]
    assert list(inspect.signature(create_app).parameters) == app_options
