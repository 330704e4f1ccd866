"""Run and job ids as people see them: short in listings, any unique prefix accepted.

Ids are ``r-`` or ``j-`` and ten hex digits. Listings print the shortest
prefix that is unique among the ids shown, but never fewer than
:data:`MIN_DIGITS` hex digits, so that a prefix copied from a listing stays
unambiguous in a history of millions of runs; the master resolves any unique
prefix (with or without ``r-``/``j-``) and lists the candidates of an
ambiguous one.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_DIGITS = 8
KIND_PREFIXES = ("r-", "j-")


def short_ids(ids: Iterable[str]) -> dict[str, str]:
    """Each id mapped to its shortest unique prefix among ``ids`` (at least MIN_DIGITS digits)."""
    ordered = sorted(set(ids))
    short: dict[str, str] = {}
    for i, value in enumerate(ordered):
        need = 0
        for other in (ordered[i - 1] if i else "", ordered[i + 1] if i + 1 < len(ordered) else ""):
            need = max(need, _common(value, other) + 1)
        head = len(value) - len(value.removeprefix("r-").removeprefix("j-"))
        short[value] = value[: max(need, head + MIN_DIGITS)]
    return short


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
