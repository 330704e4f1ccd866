"""The command palette (ctrl+p): every action of the keymap that applies here."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from sloth_tui import keymap

if TYPE_CHECKING:
    from sloth_tui.app import SlothApp


class SlothCommands(Provider):
    """Offers the keymap's actions for the screen the palette was opened on."""

    def _specs(self) -> Iterator[keymap.KeySpec]:
        contexts = getattr(self.screen, "palette_contexts", lambda: [])()
        contexts = [*contexts, "app"]
        for spec in keymap.KEYMAP:
            if spec.palette and not spec.builtin and spec.context in contexts:
                yield spec

    def _title(self, spec: keymap.KeySpec) -> str:
        return f"{spec.description}  ({spec.display_keys})"

    def _help(self, spec: keymap.KeySpec) -> str:
        return keymap.CONTEXTS[spec.context]

    def _command(self, spec: keymap.KeySpec):
        app: SlothApp = self.app  # type: ignore[assignment]
        return partial(app.run_keyspec, spec, self.screen)

    async def discover(self) -> Hits:
        for spec in self._specs():
            title = self._title(spec)
            # Text, not str: a str would be read as markup, and keys include "[".
            yield DiscoveryHit(Text(title), self._command(spec), text=title, help=self._help(spec))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec in self._specs():
            title = self._title(spec)
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._command(spec), help=self._help(spec))
