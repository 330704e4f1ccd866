"""Commands typed at the prompt, recalled with up/down and kept across sessions."""

from __future__ import annotations

import os
from pathlib import Path

MAX_ENTRIES = 1_000


class PromptHistory:
    """A list of past commands with a recall cursor; persisted to ``path`` if given.

    The file holds one command per line, oldest first, and is private to the
    user (commands can carry secrets).
    """

    def __init__(self, path: Path | None = None, *, limit: int = MAX_ENTRIES) -> None:
        self.path = path
        self.limit = limit
        self.entries: list[str] = self._load()
        self._cursor = len(self.entries)
        self._draft = ""

    def _load(self) -> list[str]:
        if self.path is None:
            return []
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-self.limit :]

    def add(self, command: str) -> None:
        """Remember ``command`` (not twice in a row) and reset the recall cursor."""
        command = command.strip()
        if command and (not self.entries or self.entries[-1] != command):
            self.entries.append(command)
            del self.entries[: -self.limit]
            self._save(command)
        self._cursor = len(self.entries)
        self._draft = ""

    def _save(self, command: str) -> None:
        if self.path is None or "\n" in command:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(command + "\n")
        except OSError:
            # Losing history is not worth interrupting the operator for.
            pass

    def previous(self, current: str) -> str | None:
        """The entry before the cursor (None at the oldest); keeps ``current`` as a draft."""
        if self._cursor == len(self.entries):
            self._draft = current
        if self._cursor == 0:
            return None
        self._cursor -= 1
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """The entry after the cursor, then the draft; None when already there."""
        if self._cursor >= len(self.entries):
            return None
        self._cursor += 1
        if self._cursor == len(self.entries):
            return self._draft
        return self.entries[self._cursor]
