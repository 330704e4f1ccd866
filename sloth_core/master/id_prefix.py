"""Ids as people type them: in full, or any unique prefix, with or without ``r-``/``j-``.

The CLI and the console print short ids (see :mod:`sloth_core.ids`); the
master turns what the caller typed back into one full id, or says which ids
an ambiguous prefix could mean.
"""

from __future__ import annotations

from typing import Literal, Protocol

from sloth_core import errors

RUN_PREFIX, JOB_PREFIX = "r-", "j-"
MAX_CANDIDATES = 10

Kind = Literal["run", "job"]


class PrefixLookup(Protocol):
    async def resolve_run_prefix(self, prefix: str, limit: int = MAX_CANDIDATES) -> list[str]: ...
    async def resolve_job_prefix(self, prefix: str, limit: int = MAX_CANDIDATES) -> list[str]: ...


async def resolve_id(storage: PrefixLookup, text: str, kinds: tuple[Kind, ...] = ("run",)) -> tuple[Kind, str]:
    """The one run or job id that ``text`` names, as ``(kind, full id)``.

    Raises :class:`~sloth_core.errors.RunNotFoundError` when nothing matches
    and :class:`~sloth_core.errors.AmbiguousIdError` (listing the candidates)
    when several do.
    """
    typed = text.strip().lower()
    found: list[tuple[Kind, str]] = []
    for kind in kinds:
        head = RUN_PREFIX if kind == "run" else JOB_PREFIX
        other = JOB_PREFIX if kind == "run" else RUN_PREFIX
        if typed.startswith(other):
            continue
        prefix = typed if typed.startswith(head) else head + typed
        lookup = storage.resolve_run_prefix if kind == "run" else storage.resolve_job_prefix
        ids = await lookup(prefix, MAX_CANDIDATES + 1)
        if prefix in ids:
            return kind, prefix  # an exact id wins over longer ids it prefixes
        found += [(kind, i) for i in ids]
    what = " or ".join(kinds)
    if not typed or not found:
        raise errors.RunNotFoundError(f"no {what} with id {text!r}")
    if len(found) > 1:
        shown = ", ".join(i for _, i in found[:MAX_CANDIDATES])
        more = " …" if len(found) > MAX_CANDIDATES else ""
        raise errors.AmbiguousIdError(f"{text!r} could mean {shown}{more}: type more of the id")
    return found[0]
