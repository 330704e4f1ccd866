"""The event feed behind ``Watch``: fan-out of agent and run events.

Publishing never blocks the master: each subscriber has a bounded queue, and a
subscriber that falls that far behind is dropped (its stream ends with
RESOURCE_EXHAUSTED) instead of growing the master's memory without bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sloth_core.bounds import listed_run
from sloth_core.proto import sloth_pb2 as pb

SUBSCRIBER_QUEUE = 50_000  # events
SUBSCRIBER_OUTPUT_BYTES = 16 * 1024 * 1024  # output bytes a watcher may lag behind


@dataclass(eq=False)
class Subscription:
    include_output: bool
    queue: asyncio.Queue[pb.WatchEvent | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    overflowed: bool = False
    queued_bytes: int = 0  # output bytes waiting in the queue

    def taken(self, event: pb.WatchEvent) -> None:
        """The reader took ``event`` off the queue."""
        if event.HasField("run") and event.run.HasField("output"):
            self.queued_bytes -= len(event.run.output.data)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, include_output: bool) -> Subscription:
        sub = Subscription(include_output)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def _publish(self, event: pb.WatchEvent, *, is_output: bool = False, size: int = 0) -> None:
        for sub in list(self._subscribers):
            if is_output and not sub.include_output:
                continue
            try:
                if sub.queued_bytes + size > SUBSCRIBER_OUTPUT_BYTES:
                    raise asyncio.QueueFull
                sub.queue.put_nowait(event)
                sub.queued_bytes += size
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subscribers.discard(sub)
                # Wake the reader so it ends its stream now.
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)

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
