"""One byte budget for the output that all ``Watch`` subscribers hold together.

Each subscriber is bounded on its own, but 100 that never read would each
hold their bound (issue 10: 2.6 GB for 100 stalled consoles during a 200 MB
run). The event bus charges every output byte it queues for a subscriber to
this budget and is given it back once that byte was sent (or dropped); when
a new chunk does not fit, the bus lets go of the subscriber that holds the
most, which is the one furthest behind, never a console that keeps up.
"""

from __future__ import annotations

DEFAULT_WATCH_BUDGET_BYTES = 64 * 1024 * 1024


class WatchBudget:
    """Bytes held for watchers (queued or in flight), against one limit."""

    def __init__(self, limit: int = DEFAULT_WATCH_BUDGET_BYTES) -> None:
        if limit <= 0:
            raise ValueError("the watch budget must be positive")
        self.limit = limit
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def take(self, size: int) -> None:
        self.used += size

    def give(self, size: int) -> None:
        self.used = max(0, self.used - size)
