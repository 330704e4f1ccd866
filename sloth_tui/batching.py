"""Coalescing stream events into a few messages per second.

A worker reading a gRPC stream can receive thousands of events a second;
posting each as a message would make the UI do thousands of small updates.
A :class:`Coalescer` collects them and hands them over as one list at most
every ``interval`` seconds (sooner when an event is marked urgent), keeping
their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Collect items and pass them to ``deliver`` in batches. Use inside a running loop."""

    def __init__(self, deliver: Callable[[list[T]], None], interval: float) -> None:
        self._deliver = deliver
        self._interval = interval
        self._items: list[T] = []
        self._handle: asyncio.TimerHandle | None = None

    def add(self, item: T, *, urgent: bool = False) -> None:
        self._items.append(item)
        if urgent:
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Deliver what is pending now (also call it when the stream ends)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._items:
            items, self._items = self._items, []
            self._deliver(items)
