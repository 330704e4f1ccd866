"""Messages the app's workers post: plain data taken off the gRPC streams.

Workers own the streams; everything else learns about the master from these.
"""

from __future__ import annotations

from textual.message import Message

from sloth_core.proto import sloth_pb2 as pb


class ConnectionChanged(Message):
    """The link to the master changed state."""

    def __init__(
        self, state: str, detail: str = "", *, retry_in: float | None = None, attempt: int = 0
    ) -> None:
        super().__init__()
        self.state = state
        """``connecting``, ``connected`` or ``disconnected``."""
        self.detail = detail
        self.retry_in = retry_in
        self.attempt = attempt


class WatchBatch(Message):
    """Events from the Watch feed, in order (a snapshot comes first, alone)."""

    def __init__(self, events: list[pb.WatchEvent]) -> None:
        super().__init__()
        self.events = events


class RunBatch(Message):
    """Events from one Run or StreamRun stream, in order."""

    def __init__(self, stream_id: str, events: list[pb.RunEvent]) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.events = events


class RunStreamEnded(Message):
    """A Run or StreamRun stream ended; ``error`` says why when it broke."""

    def __init__(self, stream_id: str, error: str | None = None) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.error = error


class HistoryLoaded(Message):
    """An agent's past runs, newest first (or why they could not be fetched)."""

    def __init__(self, agent: str, runs: list[pb.RunInfo], error: str | None = None) -> None:
        super().__init__()
        self.agent = agent
        self.runs = runs
        self.error = error
