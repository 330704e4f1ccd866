"""What the master keeps of a run's output: head and tail per stream, and the gap between."""

from __future__ import annotations

import pytest

from sloth_core.master.output import OutputRecorder, replay_events
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord
from tests.unit.fakes import MemoryStorage

pytestmark = pytest.mark.timeout(5)


def record() -> RunRecord:
    return RunRecord("r-1", "j-1", "a1", "cmd", "admin:test", pb.RUN_RUNNING, 0.0)


def chunk(data: bytes, seq: int, stream: int = pb.STDOUT) -> pb.OutputChunk:
    return pb.OutputChunk(data=data, seq=seq, stream=stream)  # type: ignore[arg-type]


def replayed(rec: RunRecord, storage: MemoryStorage) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for event in replay_events(rec, storage.output["r-1"]):
        out.append(("dropped", event.dropped) if event.HasField("dropped") else ("output", event.output.data))
    return out


def test_short_output_is_kept_whole_without_a_marker() -> None:
    storage, rec = MemoryStorage(), record()
    recorder = OutputRecorder(rec, storage, cap_per_stream=100)
    recorder.add(chunk(b"hello ", 1))
    recorder.add(chunk(b"world", 2))
    recorder.flush_tail()
    assert replayed(rec, storage) == [("output", b"hello "), ("output", b"world")]
    assert (rec.stdout_bytes, rec.dropped_bytes) == (11, 0)


def test_long_output_keeps_head_and_tail_and_says_how_much_is_missing() -> None:
    storage, rec = MemoryStorage(), record()
    recorder = OutputRecorder(rec, storage, cap_per_stream=10)  # 5 bytes of head, 5 of tail
    for seq, data in enumerate([b"0123", b"4567", b"89ab", b"cdef"], start=1):
        recorder.add(chunk(data, seq))
    assert b"".join(c.data for c in recorder.tail_snapshot()) == b"bcdef"
    recorder.flush_tail()
    assert rec.stdout_bytes == 16 and rec.dropped_bytes == 6
    assert replayed(rec, storage) == [
        ("output", b"0123"),
        ("output", b"4"),
        ("dropped", 6),
        ("output", b"b"),
        ("output", b"cdef"),
    ]


def test_each_stream_has_its_own_bound() -> None:
    storage, rec = MemoryStorage(), record()
    recorder = OutputRecorder(rec, storage, cap_per_stream=4)
    recorder.add(chunk(b"out-out-out", 1))
    recorder.add(chunk(b"er", 2, pb.STDERR))
    recorder.flush_tail()
    kept = {(c.stream, c.data) for c in storage.output["r-1"]}
    assert (pb.STDERR, b"er") in kept
    assert sum(len(d) for s, d in kept if s == pb.STDOUT) == 4
    assert (rec.stdout_bytes, rec.stderr_bytes, rec.dropped_bytes) == (11, 2, 7)
