"""`agent run`'s words, split the way ssh and `kubectl exec` split them.

Options may come before TARGETS or right after it; the command starts at the
first word that is not an option, and from there every word belongs to it
(joined with spaces, as ssh joins them); `--` ends the options explicitly.
For compatibility, options of `agent run` after a command given as one word
(`agent run web-1 'tar c /etc' --raw`) still count as options.

argparse cannot say "everything from here on", so the words are rearranged
into ``[OPTIONS...] -- TARGETS COMMAND`` before argparse sees them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sloth_core.errors import UsageError

# Options that stand in for TARGETS: with one of them, the first word is the command.
_TARGET_OPTIONS = ("--all", "--label")
_HELP = ("-h", "--help")


def normalise(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """Rearrange the words after `agent run` for ``parser`` (the `agent run` parser)."""
    table = parser._option_string_actions
    options: list[str] = []
    positionals: list[str] = []
    targets_given = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            positionals.extend(_split_rest(words[i + 1 :], targets_given, positionals))
            break
        if _looks_like_option(word):
            taken = _option_words(table, words, i)
            if taken is None:
                raise UsageError(
                    f"unknown option {word.split('=', 1)[0]!r} (a command that starts with a dash goes after `--`)"
                )
            options.extend(taken)
            targets_given = targets_given or word.split("=", 1)[0] in _TARGET_OPTIONS
            i += len(taken)
            continue
        if not positionals and not targets_given:
            positionals.append(word)  # TARGETS
            i += 1
            continue
        command = list(words[i:])
        trailing = command[1:]
        if trailing and _all_options(table, trailing):
            options.extend(trailing)
            command = command[:1]
        positionals.append(" ".join(command))
        break
    if targets_given and len(positionals) == 1 and any(w.split("=", 1)[0] in _TARGET_OPTIONS for w in options):
        positionals.insert(0, "")  # no TARGETS: the one word is the command
    return [*options, "--", *positionals]


def _split_rest(rest: Sequence[str], targets_given: bool, positionals: list[str]) -> list[str]:
    """After `--`: TARGETS first if still missing, then the command's words."""
    rest = list(rest)
    if not positionals and not targets_given and len(rest) >= 2:
        return [rest[0], " ".join(rest[1:])]
    return [" ".join(rest)] if rest else []


def _looks_like_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _is_number(word)


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _option_words(table: dict[str, argparse.Action], words: Sequence[str], i: int) -> list[str] | None:
    """The words option ``words[i]`` takes (itself and its value), or None when unknown."""
    word = words[i]
    name, eq, _ = word.partition("=")
    action = table.get(name)
    if action is None:
        return None
    if action.nargs == 0 or eq:
        return [word]
    return list(words[i : i + 2])  # a missing value is argparse's to report


def _all_options(table: dict[str, argparse.Action], words: Sequence[str]) -> bool:
    i = 0
    while i < len(words):
        if not _looks_like_option(words[i]) or words[i] in _HELP:
            return False
        taken = _option_words(table, words, i)
        if taken is None:
            return False
        i += len(taken)
    return True
