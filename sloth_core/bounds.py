"""The limits on everything an agent or a client sends (DESIGN.md, "Bounds").

Pure functions, no grpc: the servicers call them first thing, and a breach
raises :class:`~sloth_core.errors.InvalidArgumentError` (``INVALID_ARGUMENT``,
exit 255 in the CLI) with a one-line reason. Nothing unbounded then reaches
storage, logs, listings or a terminal. The defaults are in :class:`Limits`;
the master's configuration may change them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sloth_core.errors import InvalidArgumentError
from sloth_core.escape import has_unsafe, shortened
from sloth_core.names import SECRET_PREFIX

DEFAULT_MAX_COMMAND_BYTES = 128 * 1024
#: The input a fan-out (`agent run --stdin` on several agents) may carry: the master keeps it whole, once.
DEFAULT_MAX_SHARED_STDIN = 64 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Bounds on what the network may send the master."""

    max_labels: int = 64
    max_label_key: int = 63
    max_label_value: int = 255
    #: All labels together: 64 pairs at their longest would be ~20 KiB per
    #: agent, which a fleet of thousands would multiply into every listing.
    max_labels_total: int = 4096
    max_text: int = 255  # hostname, os, version
    max_address: int = 255
    max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES
    max_addresses: int = 32  # an agent's reported IP addresses
    max_env: int = 64  # --env pairs per run
    max_env_key: int = 128
    max_env_value: int = 4096
    max_env_total: int = 32 * 1024
    max_cwd: int = 4096  # PATH_MAX
    max_input_chunk: int = 64 * 1024  # stdin bytes per RunInput message (the client sends at most this)
    max_term: int = 64  # TERM of a terminal session


DEFAULT_LIMITS = Limits()


def _printable(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgumentError(f"{what} is {len(value):,} characters long; the limit is {limit}")
    if has_unsafe(value):
        raise InvalidArgumentError(f"{what} holds control characters: {shortened(value, 60)}")


def check_agent_metadata(
    *,
    address: str,
    hostname: str,
    os: str,
    version: str,
    labels: Mapping[str, str],
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """What an agent reports about itself when it registers."""
    if not address:
        raise InvalidArgumentError("an agent must report the address the master can dial (host:port)")
    _printable(address, "the agent's address", limits.max_address)
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise InvalidArgumentError(f"the agent's address {shortened(address, 60)} is not host:port")
    _printable(hostname, "the agent's hostname", limits.max_text)
    _printable(os, "the agent's os", limits.max_text)
    _printable(version, "the agent's version", limits.max_text)
    if len(labels) > limits.max_labels:
        raise InvalidArgumentError(f"the agent has {len(labels):,} labels; the limit is {limits.max_labels}")
    total = 0
    for key, value in labels.items():
        if not key:
            raise InvalidArgumentError("a label has an empty key")
        _printable(key, "a label key", limits.max_label_key)
        _printable(value, f"the value of label {key!r}", limits.max_label_value)
        total += len(key) + len(value)
    if total > limits.max_labels_total:
        raise InvalidArgumentError(
            f"the agent's labels hold {total:,} characters in all; the limit is {limits.max_labels_total:,}"
        )


def check_command(command: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """A command to run: valid UTF-8 (a ``str`` with no lone surrogates), no NUL, bounded."""
    try:
        size = len(command.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError("the command is not valid UTF-8") from None
    if size > limits.max_command_bytes:
        raise InvalidArgumentError(
            f"the command is {size:,} bytes; the master accepts at most {limits.max_command_bytes:,}"
        )
    if "\x00" in command:
        raise InvalidArgumentError("the command holds a NUL byte, which bash cannot run")


# ---------------------------------------------------------------- listings

#: Commands and errors in listings (``runs list``, ``Watch``) are cut to this;
#: ``runs show`` / ``GetRun`` still give all of a command.
LISTING_TEXT_CHARS = 1024
#: A page of a listing stays far below the 64 MiB message limit.
LISTING_PAGE_BYTES = 4 * 1024 * 1024


def listed_text(text: str, limit: int = LISTING_TEXT_CHARS) -> str:
    """``text`` cut for a listing, saying how long it was (not escaped: clients escape)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} chars in all; `runs show` has all of it)"


def listed_run(info: Any) -> Any:
    """Shorten a ``RunInfo``'s command and error in place, for a listing or a feed."""
    if len(info.command) > LISTING_TEXT_CHARS:
        info.command = listed_text(info.command)
    if len(info.error) > LISTING_TEXT_CHARS:
        info.error = listed_text(info.error)
    return info


def page(items: Iterable[T], size: Callable[[T], int], budget: int = LISTING_PAGE_BYTES) -> list[T]:
    """The longest prefix of ``items`` whose sizes add up to at most ``budget`` (at least one)."""
    taken: list[T] = []
    used = 0
    for item in items:
        used += size(item)
        if taken and used > budget:
            break
        taken.append(item)
    return taken


# ---------------------------------------------------------------- facts, env, cwd

#: Environment keys as shells name variables (``export KEY=...`` works).
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_facts(facts: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """The facts an agent reports about its machine: texts printable and bounded."""
    if facts is None:
        return
    for name in ("kernel", "os", "arch"):
        _printable(getattr(facts, name), f"the agent's {name} fact", limits.max_text)
    if len(facts.addresses) > limits.max_addresses:
        raise InvalidArgumentError(
            f"the agent reports {len(facts.addresses):,} addresses; the limit is {limits.max_addresses}"
        )
    for address in facts.addresses:
        _printable(address, "an address the agent reports", 64)


def check_run_environment(env: Mapping[str, str], cwd: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """``--env`` pairs and ``--cwd`` of a run: shell-identifier keys, bounded values, no NUL, absolute cwd."""
    if len(env) > limits.max_env:
        raise InvalidArgumentError(f"{len(env):,} --env pairs; the limit is {limits.max_env}")
    total = 0
    for key, value in env.items():
        if len(key) > limits.max_env_key or not _ENV_KEY.fullmatch(key):
            raise InvalidArgumentError(
                f"--env key {shortened(key, 60)!r} is not a variable name (letters, digits and _, not first a digit)"
            )
        if key.startswith(SECRET_PREFIX):
            raise InvalidArgumentError(f"--env cannot set {key}: {SECRET_PREFIX}* is the agent's own configuration")
        if "\x00" in value:
            raise InvalidArgumentError(f"the value of --env {key} holds a NUL byte")
        if len(value) > limits.max_env_value:
            raise InvalidArgumentError(
                f"the value of --env {key} is {len(value):,} characters; the limit is {limits.max_env_value:,}"
            )
        total += len(key) + len(value)
    if total > limits.max_env_total:
        raise InvalidArgumentError(f"--env holds {total:,} characters in all; the limit is {limits.max_env_total:,}")
    if cwd:
        if not cwd.startswith("/"):
            raise InvalidArgumentError(f"--cwd must be an absolute directory (it starts with /): {shortened(cwd, 60)}")
        if "\x00" in cwd:
            raise InvalidArgumentError("--cwd holds a NUL byte")
        _printable(cwd, "--cwd", limits.max_cwd)


# ---------------------------------------------------------------- input (stdin, terminals)

#: TERM names terminfo entries: letters, digits and a few marks (xterm-256color, screen.xterm).
_TERM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def check_terminal(pty: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """A terminal session's TERM (empty, or a terminfo name) and window size (rows and cols below 10,000)."""
    if pty.term and (len(pty.term) > limits.max_term or not _TERM.fullmatch(pty.term)):
        raise InvalidArgumentError(f"TERM {shortened(pty.term, 60)!r} is not a terminal type name")
    check_window_size(pty.size)


def check_window_size(size: Any) -> None:
    if size.rows >= 10_000 or size.cols >= 10_000:
        raise InvalidArgumentError(f"a window of {size.rows}x{size.cols} is not a terminal's")


def check_run_input(item: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """One message of a caller's input: stdin bytes in bounded chunks, or a sane window size."""
    kind = item.WhichOneof("kind")
    if kind is None:
        raise InvalidArgumentError("an input message carries nothing (stdin, eof or resize)")
    if kind == "stdin" and len(item.stdin) > limits.max_input_chunk:
        raise InvalidArgumentError(
            f"an input message carries {len(item.stdin):,} bytes; the limit is {limits.max_input_chunk:,} per message"
        )
    if kind == "resize":
        check_window_size(item.resize)
