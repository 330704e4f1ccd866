"""The event feed behind ``Watch``: fan-out of agent and run events, in batches.

Publishing never blocks the master: each subscriber has a bounded queue (in
events, and in output bytes), and a subscriber that falls that far behind is
let go (its :meth:`Subscription.batches` raises :class:`TooSlowError`, which
the servicer sends as RESOURCE_EXHAUSTED) instead of growing the master's
memory without bound. All subscribers together are bounded too
(:mod:`.watch_budget`): output bytes count from the moment they are queued
until the batch carrying them was sent, and when the budget is full the
watcher holding the most is let go.

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
from sloth_core.bounds import listed_run
from sloth_core.master.watch_budget import WatchBudget
from sloth_core.proto import sloth_pb2 as pb

SUBSCRIBER_QUEUE = 50_000  # events
SUBSCRIBER_OUTPUT_BYTES = 16 * 1024 * 1024  # output bytes a watcher may lag behind
MIN_BATCH_INTERVAL_S = 0.02  # at most one message per 20 ms per watcher
MAX_BATCH_EVENTS = 5000
# Output in one batch: what a reader whose client stopped reading keeps
# pinned in flight. A full batch goes out without waiting for the interval.
MAX_BATCH_OUTPUT_BYTES = 512 * 1024
TOO_SLOW = "this watcher fell too far behind"


def _output_size(event: pb.WatchEvent) -> int:
    if event.HasField("run") and event.run.HasField("output"):
        return len(event.run.output.data)
    return 0


@dataclass(eq=False)
class Subscription:
    """One watcher's place in the feed. Read it with :meth:`batches`."""

    include_output: bool
    _unsubscribe: Callable[[Subscription], None]
    budget: WatchBudget = field(default_factory=WatchBudget)
    min_interval_s: float = MIN_BATCH_INTERVAL_S
    max_batch: int = MAX_BATCH_EVENTS
    queue: asyncio.Queue[pb.WatchEvent | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    overflowed: bool = False
    why: str = ""  # what the watcher is told when it is let go
    queued_bytes: int = 0  # output bytes waiting in the queue
    sending_bytes: int = 0  # output bytes in the batch being sent

    @property
    def held_bytes(self) -> int:
        return self.queued_bytes + self.sending_bytes

    def offer(self, event: pb.WatchEvent, size: int) -> bool:
        """Queue ``event`` (``size`` output bytes); False when the watcher is too far behind."""
        if self.overflowed:
            return False
        if self.queued_bytes + size > SUBSCRIBER_OUTPUT_BYTES or self.queue.full():
            self.let_go(TOO_SLOW)
            return False
        self.queue.put_nowait(event)
        self.queued_bytes += size
        self.budget.take(size)
        return True

    def let_go(self, why: str) -> None:
        """Drop the backlog and wake the reader so it ends its stream now, saying ``why``.

        The batch it may be blocked sending is given back to the budget too: it
        leaves with the reader's call (cancelling that call instead would wedge
        its HTTP/2 stream, and the client would never learn why).
        """
        self.overflowed, self.why = True, why
        while not self.queue.empty():
            self.queue.get_nowait()
        self._release()
        self.queue.put_nowait(None)

    def _release(self) -> None:
        self.budget.give(self.held_bytes)
        self.queued_bytes = self.sending_bytes = 0

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self._unsubscribe(self)
        self._release()

    def _taken(self, event: pb.WatchEvent) -> None:
        if not self.overflowed:  # else its bytes were given back already
            size = _output_size(event)
            self.queued_bytes -= size
            self.sending_bytes += size

    async def batches(self) -> AsyncGenerator[list[pb.WatchEvent], None]:
        """Every later event, in batches; ends by raising :class:`~sloth_core.errors.TooSlowError`
        when this watcher fell too far behind. Leaving the loop unsubscribes."""
        loop = asyncio.get_running_loop()
        last_send = -self.min_interval_s
        queue = self.queue
        full = False
        try:
            while (event := await queue.get()) is not None:
                self._taken(event)
                wait = last_send + self.min_interval_s - loop.time()
                if wait > 0 and not full:
                    await asyncio.sleep(wait)
                batch = [event]
                while (
                    not queue.empty()
                    and len(batch) < self.max_batch
                    and self.sending_bytes < MAX_BATCH_OUTPUT_BYTES
                ):
                    event = queue.get_nowait()
                    if event is None:
                        break
                    self._taken(event)
                    batch.append(event)
                full = self.sending_bytes >= MAX_BATCH_OUTPUT_BYTES
                yield batch
                # The caller asks for more once this batch was sent.
                self.budget.give(self.sending_bytes)
                self.sending_bytes = 0
                last_send = loop.time()
                if event is None:
                    break
            if self.overflowed:
                raise errors.TooSlowError(self.why)
        finally:
            self.close()


class EventBus:
    """Publishes agent and run events to every :class:`Subscription`."""

    def __init__(self, budget: WatchBudget | None = None) -> None:
        self._subscribers: set[Subscription] = set()
        self.budget = budget or WatchBudget()
        #: Several masters: where this master's agent changes and run starts and
        #: ends go so the others see them too (:mod:`.cluster_feed`); output stays local.
        self.outbound: Callable[[pb.WatchEvent], None] | None = None

    def subscribe(self, include_output: bool) -> Subscription:
        """A new subscription; it sees every event published from now on."""
        sub = Subscription(include_output, self._subscribers.discard, self.budget)
        self._subscribers.add(sub)
        return sub

    def _make_room(self, size: int) -> None:
        """Let go of the watchers holding the most until ``size`` more bytes fit the budget."""
        while not self.budget.fits(size):
            holders = [s for s in self._subscribers if s.held_bytes]
            if not holders:
                return
            slowest = max(holders, key=lambda s: s.held_bytes)
            slowest.let_go(
                f"{TOO_SLOW}: the master holds at most {self.budget.limit / 2**20:g} MiB "
                "of output for all watchers together"
            )
            self._subscribers.discard(slowest)

    def _publish(self, event: pb.WatchEvent, *, is_output: bool = False, size: int = 0) -> None:
        for sub in list(self._subscribers):
            if is_output and not sub.include_output:
                continue
            if size and not self.budget.fits(size):
                self._make_room(size)
                if sub.overflowed:
                    continue
            if not sub.offer(event, size):
                self._subscribers.discard(sub)

    def agent(self, kind: int, info: pb.AgentInfo, *, remote: bool = False) -> None:
        if self.outbound is not None and not remote:
            self.outbound(pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info)))  # type: ignore[arg-type]
        if self._subscribers:
            self._publish(pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info)))  # type: ignore[arg-type]

    def heartbeats(self, names: list[str], at: float, facts: list[pb.AgentFacts] | None = None) -> None:
        if self._subscribers and (names or facts):
            self._publish(pb.WatchEvent(heartbeats=pb.Heartbeats(names=names, at=at, facts=facts)))

    def store(self, health: pb.StoreHealth) -> None:
        if self._subscribers:
            self._publish(pb.WatchEvent(store=health))

    def run(self, event: pb.RunEvent) -> None:
        if self.outbound is not None and not event.HasField("output"):
            self.outbound(pb.WatchEvent(run=event))
        if self._subscribers:
            is_output = event.HasField("output")
            size = len(event.output.data) if is_output else 0
            watch_event = pb.WatchEvent(run=event)  # a copy: the job's caller keeps the whole command
            for kind in ("started", "finished"):
                if watch_event.run.HasField(kind):
                    listed_run(getattr(watch_event.run, kind))
            self._publish(watch_event, is_output=is_output, size=size)

    def remote(self, event: pb.WatchEvent) -> None:
        """An event another master published (never sent out again)."""
        if self._subscribers:
            self._publish(event)
