"""The records the master acknowledged and the store has not taken yet.

Writes are queued as plain rows (snapshots taken when they are queued, so the
master may keep changing its objects) and coalesced: an agent or a run is one
record however often it changed, an output chunk is one record. What a write
pass takes out is *in flight* until the store confirms it; what failed goes
back in front of what arrived meanwhile, so nothing is lost and nothing newer
is overwritten by something older.

While the store is failing the queue is bounded: past ``limit`` records the
oldest output goes first; run records (a run's start, its final status) are
never dropped, and when they alone fill the queue the master refuses new runs.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

Row = tuple[Any, ...]
# (run_id, seq, part, stream, data): the run_output table's columns
OutputRow = tuple[str, int, int, int, bytes]

DEFAULT_QUEUE_LIMIT = 10_000  # records (run rows and output chunks)


@dataclass
class Batch:
    """One write pass: everything queued at one moment, coalesced."""

    agents: dict[str, Row | None] = field(default_factory=dict)  # None: delete
    runs: dict[str, Row] = field(default_factory=dict)
    output: deque[OutputRow] = field(default_factory=deque)
    prunes: dict[str, int] = field(default_factory=dict)  # agent -> runs to keep

    def __len__(self) -> int:
        return len(self.agents) + len(self.runs) + len(self.output) + len(self.prunes)

    def items(self) -> list[tuple[str, Any, Any]]:
        """Every record on its own, in the order a pass applies them."""
        out: list[tuple[str, Any, Any]] = [("agent", k, v) for k, v in self.agents.items()]
        out += [("run", k, v) for k, v in self.runs.items()]
        out += [("output", row[0], row) for row in self.output]
        out += [("prune", k, v) for k, v in self.prunes.items()]
        return out

    def add_item(self, kind: str, key: Any, value: Any) -> None:
        if kind == "agent":
            self.agents[key] = value
        elif kind == "run":
            self.runs[key] = value
        elif kind == "output":
            self.output.append(value)
        else:
            self.prunes[key] = value


class PendingWrites:
    """Thread-safe: the master's loop adds, the writer takes and gives back."""

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._pending = Batch()
        self._inflight = Batch()
        self.dropped = 0  # output records dropped because the queue was full
        self.bounded = False  # set while the store is failing

    # ------------------------------------------------------------ adding

    def put_agent(self, name: str, row: Row | None) -> None:
        with self._lock:
            self._pending.agents[name] = row

    def put_runs(self, rows: list[Row]) -> None:
        with self._lock:
            runs = self._pending.runs
            for row in rows:
                runs[row[0]] = row
            if self.bounded:
                self._enforce_bound()

    def put_output(self, rows: list[OutputRow]) -> None:
        with self._lock:
            self._pending.output.extend(rows)
            if self.bounded:
                self._enforce_bound()

    def put_prune(self, agent: str, keep: int) -> None:
        with self._lock:
            self._pending.prunes[agent] = keep

    # ------------------------------------------------------------ the writer's side

    def take(self) -> Batch:
        """Everything pending, now in flight."""
        with self._lock:
            batch, self._pending = self._pending, Batch()
            self._inflight = batch
            return batch

    def done(self, failed: Batch | None = None) -> None:
        """The pass is over; ``failed`` (if any) goes back, older than what came since."""
        with self._lock:
            self._inflight = Batch()
            if failed:
                pending = self._pending
                for name, agent in failed.agents.items():
                    pending.agents.setdefault(name, agent)
                for run_id, row in failed.runs.items():
                    pending.runs.setdefault(run_id, row)
                pending.output.extendleft(reversed(failed.output))
                for agent, keep in failed.prunes.items():
                    pending.prunes.setdefault(agent, keep)
            if self.bounded:
                self._enforce_bound()

    def _enforce_bound(self) -> None:
        output = self._pending.output
        excess = self._bounded_count() - self.limit
        while excess > 0 and output:
            output.popleft()
            self.dropped += 1
            excess -= 1

    # ------------------------------------------------------------ views

    def _bounded_count(self) -> int:
        # Agent rows are bounded by the registry itself and prunes are not
        # history: the bound is on what grows with the work, runs and output.
        p, f = self._pending, self._inflight
        return len(p.runs) + len(p.output) + len(f.runs) + len(f.output)

    def count(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._inflight)

    def full(self) -> bool:
        """Only records that may not be dropped are left, and they fill the queue."""
        with self._lock:
            p, f = self._pending, self._inflight
            return self.bounded and len(p.runs) + len(f.runs) >= self.limit

    def agent_rows(self) -> dict[str, Row | None]:
        """Agent rows not in the store yet (None: deleted; newest wins)."""
        with self._lock:
            return {**self._inflight.agents, **self._pending.agents}

    def run_rows(self) -> dict[str, Row]:
        """Run rows not in the store yet (newest wins)."""
        with self._lock:
            return {**self._inflight.runs, **self._pending.runs}

    def output_rows(self, run_id: str) -> list[OutputRow]:
        with self._lock:
            return [r for b in (self._inflight, self._pending) for r in b.output if r[0] == run_id]
