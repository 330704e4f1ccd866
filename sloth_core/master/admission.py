"""Load shedding: past a number of operator calls in flight, the master says "busy".

An overloaded server must slow callers down, never drop them silently: a
call refused here ends with :class:`~sloth_core.errors.MasterBusyError`
(``RESOURCE_EXHAUSTED``, reason ``master_busy``), which
:class:`~sloth_core.client.MasterClient` retries with backoff and reports
plainly if it gives up. Agents' own calls (register, heartbeat, leave) are
never shed: an agent refused as busy would turn offline, which is worse
than a slow answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sloth_core.errors import MasterBusyError

DEFAULT_MAX_CALLS = 20_000


class Admission:
    """Operator calls in flight (streams included), against one limit."""

    def __init__(self, limit: int = DEFAULT_MAX_CALLS) -> None:
        if limit <= 0:
            raise ValueError("the call limit must be positive")
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise MasterBusyError(
                f"master busy: {self.active:,} calls in flight (its limit is {self.limit:,}); try again shortly"
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
