"""Callers' input for runs: from the caller's ``Interact`` call to each run's ``Input`` call.

Memory stays bounded on every hop:

- one run (``agent run NAME`` with stdin, ``agent shell``): :class:`StreamedInput`,
  a small queue between the two calls. When it is full the master stops
  reading the caller, whose writes then wait (HTTP/2 flow control): a slow
  command slows its caller, nothing piles up here.
- several runs (``--stdin`` fan-out, maybe ``--parallel`` so some start
  later): :class:`SharedInput` keeps the whole input once, up to a cap, and
  every run reads it with its own cursor. The runs start once the input is
  complete (:meth:`InputFeed.ready`), so a job whose input breaks the cap
  (:class:`~sloth_core.errors.StdinTooLargeError`) or whose caller goes
  away mid-input runs nothing anywhere.

Stdin bytes are never stored or logged. No gRPC here: the servicers feed
this module and read from it, and unit tests reach it directly.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Protocol

from sloth_core import errors
from sloth_core.bounds import DEFAULT_MAX_SHARED_STDIN
from sloth_core.proto import sloth_pb2 as pb

DEFAULT_STDIN_CAP = DEFAULT_MAX_SHARED_STDIN  # what a fan-out's shared input may hold
STREAM_QUEUE = 16  # messages of at most 64 KiB: about 1 MiB in flight per run
# Stdin bytes waiting together go to the agent as one message of up to this:
# a message costs the same whatever its size, so a backlog travels in fewer.
COALESCE_BYTES = 256 * 1024
EOF = pb.RunInput(eof=True)


class InputFeed(Protocol):
    """A job's input, as its caller sends it and as its runs read it."""

    async def put(self, item: pb.RunInput) -> None:
        """Take the next message from the caller (may wait for room)."""

    def close(self) -> None:
        """No more input will come (the job ended, or its caller went away)."""

    async def ready(self) -> None:
        """Returns when the runs may start: at once, or when the whole input is here (or never will be)."""

    def read(self) -> AsyncIterator[pb.RunInput]:
        """One run's view of the input, ending after EOF or :meth:`close`."""


class StreamedInput:
    """One run's input, relayed as it comes through a small bounded queue."""

    def __init__(self, limit: int = STREAM_QUEUE) -> None:
        self._items: collections.deque[pb.RunInput] = collections.deque()
        self._limit = limit
        self._room = asyncio.Event()
        self._ready = asyncio.Event()
        self._closed = False
        self._reading = False
        self._reader_gone = False  # the run stopped reading: its input has nowhere to go

    @property
    def queued(self) -> int:
        return len(self._items)

    async def put(self, item: pb.RunInput) -> None:
        while len(self._items) >= self._limit and not (self._closed or self._reader_gone):
            self._room.clear()
            await self._room.wait()
        if self._closed or self._reader_gone:
            return  # dropped: the command exited or closed its stdin, as a pipe would
        self._items.append(item)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
        self._room.set()

    async def ready(self) -> None:
        return  # the run reads as its caller sends

    def _take(self) -> pb.RunInput:
        """The next message, with the stdin bytes queued right behind it joined in (up to COALESCE_BYTES)."""
        item = self._items.popleft()
        if not item.HasField("stdin") or not self._items or not self._items[0].HasField("stdin"):
            return item
        parts, size = [item.stdin], len(item.stdin)
        while self._items and self._items[0].HasField("stdin") and size + len(self._items[0].stdin) <= COALESCE_BYTES:
            data = self._items.popleft().stdin
            parts.append(data)
            size += len(data)
        return pb.RunInput(stdin=b"".join(parts))

    async def read(self) -> AsyncIterator[pb.RunInput]:
        if self._reading or self._reader_gone:
            raise errors.RunExistsError("this run's input is already being read")
        self._reading = True
        try:
            while True:
                while not self._items:
                    if self._closed:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                item = self._take()
                self._room.set()
                yield item
                if item.HasField("eof"):
                    return
        finally:
            self._reader_gone = True
            self._items.clear()
            self._room.set()


class SharedInput:
    """A fan-out's input, kept once (up to ``cap`` bytes) and read by every run with its own cursor."""

    def __init__(self, cap: int = DEFAULT_STDIN_CAP) -> None:
        self._chunks: list[bytes] = []
        self.size = 0
        self._cap = cap
        self._eof = False
        self._closed = False
        self._grew = asyncio.Event()
        self._complete = asyncio.Event()  # EOF arrived, or the input was closed

    async def put(self, item: pb.RunInput) -> None:
        kind = item.WhichOneof("kind")
        if kind == "stdin" and not self._eof:
            if self.size + len(item.stdin) > self._cap:
                raise errors.StdinTooLargeError(
                    f"stdin for several agents is over {_mib(self._cap)}, the most the master keeps for a job; "
                    "send less, or run the agents one at a time"
                )
            if item.stdin:
                self._chunks.append(item.stdin)
                self.size += len(item.stdin)
                self._wake()
        elif kind == "eof":
            self._eof = True
            self._complete.set()
            self._wake()
        # A window size means nothing without a terminal, and a fan-out has none.

    def close(self) -> None:
        self._closed = True
        self._complete.set()
        self._wake()

    async def ready(self) -> None:
        await self._complete.wait()

    def _wake(self) -> None:
        self._grew.set()
        self._grew = asyncio.Event()

    async def read(self) -> AsyncIterator[pb.RunInput]:
        cursor = 0
        while True:
            if cursor < len(self._chunks):
                parts, size = [self._chunks[cursor]], len(self._chunks[cursor])
                cursor += 1
                while cursor < len(self._chunks) and size + len(self._chunks[cursor]) <= COALESCE_BYTES:
                    parts.append(self._chunks[cursor])
                    size += len(self._chunks[cursor])
                    cursor += 1
                yield pb.RunInput(stdin=parts[0] if len(parts) == 1 else b"".join(parts))
            elif self._eof:
                yield EOF
                return
            elif self._closed:
                return
            else:
                await self._grew.wait()


def feed_for(runs: int, cap: int = DEFAULT_STDIN_CAP) -> InputFeed:
    """The feed for a job of ``runs`` runs: streamed for one, shared (capped) for several."""
    return StreamedInput() if runs <= 1 else SharedInput(cap)


class InputRelay:
    """The feeds of the runs in flight that take input, by run id (what ``Input`` calls read)."""

    def __init__(self) -> None:
        self._feeds: dict[str, InputFeed] = {}

    def add(self, run_id: str, feed: InputFeed) -> None:
        self._feeds[run_id] = feed

    def remove(self, run_id: str) -> None:
        self._feeds.pop(run_id, None)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._feeds

    def read(self, run_id: str) -> AsyncIterator[pb.RunInput]:
        """Run ``run_id``'s input; :class:`~sloth_core.errors.RunNotFoundError` if it takes none."""
        feed = self._feeds.get(run_id)
        if feed is None:
            raise errors.RunNotFoundError(f"run {run_id!r} takes no input here")
        return feed.read()


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
