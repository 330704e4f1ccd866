"""The event feed behind ``Watch``: fan-out of agent and run events, in batches.

Publishing never blocks the master: each subscriber has a bounded queue (in
events, and in output bytes), and a subscriber that falls that far behind is
let go (its :meth:`Subscription.batches` raises :class:`TooSlowError`, which
the servicer sends as RESOURCE_EXHAUSTED) instead of growing the master's
memory without bound.

A subscriber reads batches, not events: at most one batch per
:data:`MIN_BATCH_INTERVAL_S`. An event after a quiet spell goes out at once;
in a burst (a 1,000-agent job) events gather into a few large messages, so 20
consoles cost the master 100 sends, not 80,000.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb

SUBSCRIBER_QUEUE = 50_000  # events
SUBSCRIBER_OUTPUT_BYTES = 16 * 1024 * 1024  # output bytes a watcher may lag behind
MIN_BATCH_INTERVAL_S = 0.02  # at most one message per 20 ms per watcher
MAX_BATCH_EVENTS = 5000


def _output_size(event: pb.WatchEvent) -> int:
    if event.HasField("run") and event.run.HasField("output"):
        return len(event.run.output.data)
    return 0


@dataclass(eq=False)
class Subscription:
    """One watcher's place in the feed. Read it with :meth:`batches`."""

    include_output: bool
    _unsubscribe: Callable[[Subscription], None]
    min_interval_s: float = MIN_BATCH_INTERVAL_S
    max_batch: int = MAX_BATCH_EVENTS
    queue: asyncio.Queue[pb.WatchEvent | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    overflowed: bool = False
    queued_bytes: int = 0  # output bytes waiting in the queue

    def offer(self, event: pb.WatchEvent, size: int) -> bool:
        """Queue ``event`` (``size`` output bytes); False when the watcher is too far behind."""
        if self.overflowed:
            return False
        if self.queued_bytes + size > SUBSCRIBER_OUTPUT_BYTES or self.queue.full():
            self.overflowed = True
            # Wake the reader so it ends its stream now, not after the backlog.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(event)
        self.queued_bytes += size
        return True

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self._unsubscribe(self)

    def _taken(self, event: pb.WatchEvent) -> None:
        self.queued_bytes -= _output_size(event)

    async def batches(self) -> AsyncGenerator[list[pb.WatchEvent], None]:
        """Every later event, in batches; ends by raising :class:`~sloth_core.errors.TooSlowError`
        when this watcher fell too far behind. Leaving the loop unsubscribes."""
        loop = asyncio.get_running_loop()
        last_send = -self.min_interval_s
        queue = self.queue
        try:
            while (event := await queue.get()) is not None:
                self._taken(event)
                wait = last_send + self.min_interval_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                batch = [event]
                while not queue.empty() and len(batch) < self.max_batch:
                    event = queue.get_nowait()
                    if event is None:
                        break
                    self._taken(event)
                    batch.append(event)
                yield batch
                last_send = loop.time()
                if event is None:
                    break
            if self.overflowed:
                raise errors.TooSlowError("this watcher fell too far behind")
        finally:
            self.close()


class EventBus:
    """Publishes agent and run events to every :class:`Subscription`."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, include_output: bool) -> Subscription:
        """A new subscription; it sees every event published from now on."""
        sub = Subscription(include_output, self._subscribers.discard)
        self._subscribers.add(sub)
        return sub

    def _publish(self, event: pb.WatchEvent, *, is_output: bool = False, size: int = 0) -> None:
        for sub in list(self._subscribers):
            if is_output and not sub.include_output:
                continue
            if not sub.offer(event, size):
                self._subscribers.discard(sub)

    def agent(self, kind: int, info: pb.AgentInfo) -> None:
        if self._subscribers:
            self._publish(pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info)))  # type: ignore[arg-type]

    def heartbeats(self, names: list[str], at: float) -> None:
        if self._subscribers and names:
            self._publish(pb.WatchEvent(heartbeats=pb.Heartbeats(names=names, at=at)))

    def store(self, health: pb.StoreHealth) -> None:
        if self._subscribers:
            self._publish(pb.WatchEvent(store=health))

    def run(self, event: pb.RunEvent) -> None:
        if self._subscribers:
            is_output = event.HasField("output")
            size = len(event.output.data) if is_output else 0
            self._publish(pb.WatchEvent(run=event), is_output=is_output, size=size)
