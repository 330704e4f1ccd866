"""The prompt's run options: ``--env KEY=VALUE``, ``--cwd DIR`` and ``--stdin FILE`` before the command, as in `agent run`.

``--cwd /srv/app --env RELEASE=42 ./deploy.sh`` runs ``./deploy.sh`` in
``/srv/app`` with ``RELEASE=42``; ``--stdin deploy.sh sh -s`` sends the local
file ``deploy.sh`` (on the console's machine) as the command's stdin, to
every target. Options are read from the start of the line
up to the first word that is not one (or up to ``--``); values may be quoted
as in a shell (``--env 'GREETING=hello world'``). The command itself is kept
exactly as typed: it is bash's to read, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sloth_core.errors import UsageError
from sloth_core.names import parse_env

OPTIONS = ("--env", "--cwd", "--stdin")
_VALUE_NAMES = {"--env": "KEY=VALUE", "--cwd": "DIR", "--stdin": "FILE"}


@dataclass(frozen=True)
class RunOptions:
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    stdin: str = ""
    """A local file sent as the command's stdin (as typed; ``~`` is expanded when it is read)."""

    def __bool__(self) -> bool:
        return bool(self.env or self.cwd or self.stdin)

    def describe(self) -> str:
        """``in /srv/app with RELEASE=42, stdin from deploy.sh``, for a confirmation."""
        parts = [f"in {self.cwd}"] if self.cwd else []
        if self.env:
            parts.append("with " + " ".join(f"{k}={v}" for k, v in self.env.items()))
        text = " ".join(parts)
        if self.stdin:
            text += (", " if text else "") + f"stdin from {self.stdin}"
        return text


def _word(text: str, start: int) -> tuple[str, int]:
    """One shell word from ``start`` (quotes and backslashes as in sh); returns it and where it ended."""
    out: list[str] = []
    i = start
    while i < len(text) and not text[i].isspace():
        ch = text[i]
        if ch in "'\"":
            end = text.find(ch, i + 1)
            if end < 0:
                raise UsageError(f"unclosed {ch} in the run options")
            out.append(text[i + 1 : end])
            i = end + 1
        elif ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def split_run_options(line: str) -> tuple[RunOptions, str]:
    """(options, command) of a prompt line; raises UsageError for a malformed option."""
    env: dict[str, str] = {}
    cwd = stdin = ""
    i = _skip_space(line, 0)
    while i < len(line):
        word, end = _word(line, i)
        name, eq, inline = word.partition("=")
        if word == "--":
            i = _skip_space(line, end)
            break
        if name not in OPTIONS:
            break
        if eq:
            value = inline
        else:
            start = _skip_space(line, end)
            if start >= len(line):
                raise UsageError(f"{name} needs a value ({_VALUE_NAMES[name]})")
            value, end = _word(line, start)
        if name == "--env":
            key, val = parse_env(value)
            env[key] = val
        elif name == "--cwd":
            cwd = value
        else:
            stdin = value
        i = _skip_space(line, end)
    return RunOptions(env, cwd, stdin), line[i:].strip()
