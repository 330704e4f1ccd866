"""The event feed behind ``Watch``: fan-out of agent and run events.

Publishing never blocks the master: each subscriber has a bounded queue, and a
subscriber that falls that far behind is dropped (its stream ends with
RESOURCE_EXHAUSTED) instead of growing the master's memory without bound.
All subscribers together are bounded too (:mod:`.watch_budget`): output bytes
count from the moment they are queued until their batch was sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sloth_core.bounds import listed_run
from sloth_core.master.watch_budget import WatchBudget
from sloth_core.proto import sloth_pb2 as pb

SUBSCRIBER_QUEUE = 50_000  # events
SUBSCRIBER_OUTPUT_BYTES = 16 * 1024 * 1024  # output bytes a watcher may lag behind
BATCH_OUTPUT_BYTES = 512 * 1024  # output in one Watch message: what a stalled reader pins in flight


def output_size(event: pb.WatchEvent | None) -> int:
    if event is not None and event.HasField("run") and event.run.HasField("output"):
        return len(event.run.output.data)
    return 0


@dataclass(eq=False)
class Subscription:
    include_output: bool
    queue: asyncio.Queue[pb.WatchEvent | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    overflowed: bool = False
    why: str = ""  # why it was let go
    queued_bytes: int = 0  # output bytes waiting in the queue
    sending_bytes: int = 0  # output bytes taken for the batch being sent

    @property
    def held_bytes(self) -> int:
        return self.queued_bytes + self.sending_bytes

    def taken(self, event: pb.WatchEvent) -> None:
        """The reader took ``event`` off the queue for the batch it is sending."""
        if self.overflowed:
            return  # its bytes were given back when it was let go
        size = output_size(event)
        self.queued_bytes -= size
        self.sending_bytes += size


class EventBus:
    def __init__(self, budget: WatchBudget | None = None) -> None:
        self._subscribers: set[Subscription] = set()
        self.budget = budget or WatchBudget()

    def subscribe(self, include_output: bool) -> Subscription:
        sub = Subscription(include_output)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self.budget.give(sub.held_bytes)
        sub.queued_bytes = sub.sending_bytes = 0

    def sent(self, sub: Subscription) -> None:
        """The batch ``sub`` was sending is out: its bytes leave the budget."""
        self.budget.give(sub.sending_bytes)
        sub.sending_bytes = 0

    def _let_go(self, sub: Subscription, why: str) -> None:
        sub.overflowed, sub.why = True, why
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        # The batch it may be blocked sending (at most BATCH_OUTPUT_BYTES) is
        # let go of too: it leaves with the reader's call. Cancelling that
        # call instead would leave its HTTP/2 stream wedged, and the
        # client would never learn why.
        self.budget.give(sub.held_bytes)
        sub.queued_bytes = sub.sending_bytes = 0
        sub.queue.put_nowait(None)

    def _make_room(self, size: int) -> None:
        while not self.budget.fits(size):
            holders = [s for s in self._subscribers if s.include_output and s.held_bytes]
            if not holders:
                return  # what is held belongs to readers already let go; they are ending
            self._let_go(
                max(holders, key=lambda s: s.held_bytes),
                f"this watcher fell too far behind: the master holds at most "
                f"{self.budget.limit // (1024 * 1024)} MiB of output for all watchers together",
            )

    def _publish(self, event: pb.WatchEvent, *, is_output: bool = False, size: int = 0) -> None:
        for sub in list(self._subscribers):
            if is_output and not sub.include_output:
                continue
            if sub.queued_bytes + size > SUBSCRIBER_OUTPUT_BYTES or sub.queue.full():
                self._let_go(sub, "this watcher fell too far behind")
                continue
            if size and not self.budget.fits(size):
                self._make_room(size)
                if sub.overflowed:
                    continue
            sub.queue.put_nowait(event)
            sub.queued_bytes += size
            self.budget.take(size)

    def agent(self, kind: int, info: pb.AgentInfo) -> None:
        if self._subscribers:
            self._publish(pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info)))  # type: ignore[arg-type]

    def heartbeats(self, names: list[str], at: float) -> None:
        if self._subscribers and names:
            self._publish(pb.WatchEvent(heartbeats=pb.Heartbeats(names=names, at=at)))

    def run(self, event: pb.RunEvent) -> None:
        if self._subscribers:
            is_output = event.HasField("output")
            size = len(event.output.data) if is_output else 0
            watch_event = pb.WatchEvent(run=event)  # a copy: the job's caller keeps the whole command
            for kind in ("started", "finished"):
                if watch_event.run.HasField(kind):
                    listed_run(getattr(watch_event.run, kind))
            self._publish(watch_event, is_output=is_output, size=size)
