"""The one home for making agent- or command-supplied text safe to show.

Anything an agent or a command sent (hostnames, labels, addresses, commands,
error texts) may hold terminal escape sequences or newlines. Shown raw, an
escape sequence repaints an operator's terminal and a newline forges a line
in a log. Every CLI table, the console and every log line pass such text
through :func:`shown`, which makes control characters visible (``\\x1b``,
``\\n``) instead of executing them. Command *output* is another matter: the
console strips sequences from it with :func:`clean_output` (what a terminal
would display, minus what it would obey); `agent run` passes it through raw,
as ssh does.
"""

from __future__ import annotations

import logging
import re

# C0 controls (newline and tab included), DEL, C1 controls (a terminal may
# read U+009B as CSI), Unicode line/paragraph separators (a new line to some
# log viewers) and the bidi overrides that make text read differently from
# what it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` with every control character shown as an escape, never obeyed."""
    if not _UNSAFE.search(text):
        return text  # the common case costs one scan
    return _UNSAFE.sub(_visible, text)


def has_unsafe(text: str) -> bool:
    """Whether :func:`shown` would change ``text`` (used by the bounds checks)."""
    return _UNSAFE.search(text) is not None


SHORT_CHARS = 200


def shortened(text: str, limit: int = SHORT_CHARS) -> str:
    """At most ``limit`` characters of ``text``, escaped, saying how long it was."""
    if len(text) <= limit:
        return shown(text)
    return f"{shown(text[:limit])}… ({len(text):,} chars)"


# ANSI CSI / OSC / two-character escapes; then any other C0 or C1 control.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NEEDS_CLEANING = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def clean_output(text: str) -> str:
    """Command output as a screen would show it: sequences removed, controls as U+FFFD.

    Tabs are expanded, CRLF becomes LF, and a lone carriage return (a
    progress bar redrawing its line) keeps what was written after it.
    """
    if not _NEEDS_CLEANING.search(text):
        return text
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    if "\t" in text:
        text = text.expandtabs(8)
    return _CONTROLS.sub("\ufffd", text)


class EscapingFilter(logging.Filter):
    """A log handler filter: one record is one line, whatever its arguments hold.

    Applied to the master's and the agent's handlers, so no call site can
    forget it: strings (and the text of other objects) in a record's message
    and arguments are passed through :func:`shown`; numbers stay numbers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = shown(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_safe_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _safe_arg(v) for k, v in args.items()}
        return True


def _safe_arg(value: object) -> object:
    if value is None or isinstance(value, (int, float)):
        return value
    return shown(value if isinstance(value, str) else str(value))
