"""Output bounds: what the master keeps of each run's output.

Live streaming is never truncated; what is *kept* is bounded per stream: the
first half of the cap (the head) and the last half (the tail), with the size
of the gap between them recorded so a replay can say what is missing.
"""

from __future__ import annotations

from collections import deque

from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord, Storage, StoredChunk


class OutputRecorder:
    """Keeps a run's head and tail per stream and hands the head to storage."""

    def __init__(self, record: RunRecord, storage: Storage, cap_per_stream: int, *, keep: bool = True) -> None:
        self._record = record
        self._keep = keep  # False: count the bytes, keep none (a terminal session's screen)
        self._storage = storage
        self._half = max(1, cap_per_stream // 2)
        self._head_used = {pb.STDOUT: 0, pb.STDERR: 0}
        self._tails: dict[int, deque[StoredChunk]] = {pb.STDOUT: deque(), pb.STDERR: deque()}
        self._tail_used = {pb.STDOUT: 0, pb.STDERR: 0}

    def add(self, chunk: pb.OutputChunk) -> None:
        rec = self._record
        stream = chunk.stream if chunk.stream in self._head_used else pb.STDOUT
        data = chunk.data
        if stream == pb.STDERR:
            rec.stderr_bytes += len(data)
        else:
            rec.stdout_bytes += len(data)
        if not self._keep:
            return
        room = self._half - self._head_used[stream]
        if room > 0:
            head, data = data[:room], data[room:]
            self._head_used[stream] += len(head)
            self._storage.append_output(rec.run_id, [StoredChunk(chunk.seq, stream, head, 0)])
        if not data:
            return
        tail = self._tails[stream]
        tail.append(StoredChunk(chunk.seq, stream, data, 1))
        self._tail_used[stream] += len(data)
        excess = self._tail_used[stream] - self._half
        while excess > 0:
            oldest = tail[0]
            cut = min(excess, len(oldest.data))
            if cut == len(oldest.data):
                tail.popleft()
            else:
                oldest.data = oldest.data[cut:]
            self._tail_used[stream] -= cut
            rec.dropped_bytes += cut
            excess -= cut

    def tail_snapshot(self) -> list[StoredChunk]:
        return sorted((c for t in self._tails.values() for c in t), key=lambda c: c.seq)

    def flush_tail(self) -> None:
        """Store the tail; called once the run is over."""
        chunks = self.tail_snapshot()
        if chunks:
            self._storage.append_output(self._record.run_id, chunks)
        for tail in self._tails.values():
            tail.clear()


def replay_events(rec: RunRecord, chunks: list[StoredChunk]) -> list[pb.RunEvent]:
    """Stored output as RunEvents, with a ``dropped`` marker where the tail begins."""
    ids = {"job_id": rec.job_id, "run_id": rec.run_id, "agent": rec.agent}
    events: list[pb.RunEvent] = []
    marker_due = rec.dropped_bytes > 0
    for chunk in sorted(chunks, key=lambda c: (c.seq, c.part)):
        if marker_due and chunk.part == 1:
            events.append(pb.RunEvent(**ids, dropped=rec.dropped_bytes))
            marker_due = False
        output = pb.OutputChunk(stream=chunk.stream, data=chunk.data, seq=chunk.seq)  # type: ignore[arg-type]
        events.append(pb.RunEvent(**ids, output=output))
    if marker_due:
        events.append(pb.RunEvent(**ids, dropped=rec.dropped_bytes))
    return events
