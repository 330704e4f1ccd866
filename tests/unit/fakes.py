"""Stand-ins for the master's edges: a clock, storage in memory, agents without gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord, RunRecord, StoredChunk, StoreHealth


class FakeClock:
    """``time.time`` that moves only when told."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryStorage:
    """The :class:`~sloth_core.storage.Storage` interface over dicts (copies in, copies out)."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.runs: dict[str, RunRecord] = {}
        self.output: dict[str, list[StoredChunk]] = {}

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def flush(self) -> None: ...

    async def load_agents(self) -> list[AgentRecord]:
        return [replace(a) for a in self.agents.values()]

    def save_agent(self, record: AgentRecord) -> None:
        self.agents[record.name] = replace(record, labels=dict(record.labels))

    def save_agents(self, records: list[AgentRecord]) -> None:
        for record in records:
            self.save_agent(record)

    def delete_agent(self, name: str) -> None:
        self.agents.pop(name, None)

    def save_run(self, record: RunRecord) -> None:
        self.runs[record.run_id] = replace(record)

    def save_runs(self, records: list[RunRecord]) -> None:
        for record in records:
            self.save_run(record)

    def append_output(self, run_id: str, chunks: list[StoredChunk]) -> None:
        self.output.setdefault(run_id, []).extend(replace(c) for c in chunks)

    def prune_runs(self, agent: str, keep: int) -> None: ...

    async def mark_unfinished(self, status: int, error: str, now: float) -> int:
        return 0

    async def runs_in_flight(self, *, other_than: str) -> list[RunRecord]:
        return [replace(r) for r in self.runs.values()
                if r.status in (pb.RUN_PENDING, pb.RUN_RUNNING) and r.driver != other_than]

    async def get_run(self, run_id: str) -> RunRecord | None:
        rec = self.runs.get(run_id)
        return replace(rec) if rec else None

    async def list_runs(self, *, agent: str = "", status: int = 0, job_id: str = "", limit: int = 50) -> list[RunRecord]:
        found = [
            replace(r) for r in self.runs.values()
            if (not agent or r.agent == agent) and (not status or r.status == status) and (not job_id or r.job_id == job_id)
        ]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    async def resolve_run_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        return sorted(r for r in self.runs if r.startswith(prefix))[:limit] if prefix else []

    async def resolve_job_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        return sorted({r.job_id for r in self.runs.values() if r.job_id.startswith(prefix)})[:limit] if prefix else []

    async def read_output(self, run_id: str) -> list[StoredChunk]:
        return [replace(c) for c in self.output.get(run_id, [])]

    def health(self) -> StoreHealth:
        return StoreHealth(store="memory")

    def on_health_change(self, listener: Callable[[StoreHealth], None]) -> None: ...

    def check_accepting(self) -> None: ...


@dataclass
class FakeCall:
    """An ``Execute`` call the test drives: push events, then end it."""

    agent: AgentRecord
    request: pb.ExecuteRequest
    queue: asyncio.Queue[pb.ExecuteEvent | BaseException | None] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    _done: bool = False

    async def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]:
        try:
            while (item := await self.queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._done = True

    def cancel(self) -> bool:
        self.cancelled = True
        self._done = True
        return True

    def done(self) -> bool:
        return self._done

    # ------------------------------------------------------------ the agent's side

    def start(self, at: float = 1.0) -> None:
        self.queue.put_nowait(pb.ExecuteEvent(started=pb.ExecStarted(pid=4242, started_at=at)))

    def output(self, data: bytes, seq: int, stream: int = pb.STDOUT) -> None:
        self.queue.put_nowait(pb.ExecuteEvent(output=pb.OutputChunk(stream=stream, data=data, seq=seq)))  # type: ignore[arg-type]

    def exit(self, status: int, exit_code: int, error: str = "") -> None:
        self.queue.put_nowait(pb.ExecuteEvent(exit=pb.ExecExit(status=status, exit_code=exit_code, error=error)))  # type: ignore[arg-type]
        self.queue.put_nowait(None)

    def fail(self, exc: BaseException) -> None:
        self.queue.put_nowait(exc)


class FakeAgentLink:
    """The :class:`~sloth_core.master.agent_link.AgentLink` with scripted agents.

    ``script(call)`` (if set) runs as soon as a run reaches an agent; by
    default the test waits for the call in :attr:`calls` and drives it.
    """

    def __init__(self) -> None:
        self.calls: dict[str, FakeCall] = {}
        self.arrived = asyncio.Event()
        self.cancelled: list[str] = []
        self.shut_down: list[str] = []
        self.forgotten: list[str] = []
        self.unreachable: set[str] = set()
        self.answering: set[str] = set()
        self.on_cancel_exit = True  # a cancelled run reports its exit, as a real agent does

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> FakeCall:
        call = FakeCall(agent, request)
        self.calls[agent.name] = call
        self.arrived.set()
        if agent.name in self.unreachable:
            call.fail(errors.AgentUnreachableError(f"could not reach agent {agent.name!r} at {agent.address}: down"))
        return call

    async def wait_calls(self, count: int) -> dict[str, FakeCall]:
        while len(self.calls) < count:
            self.arrived.clear()
            await self.arrived.wait()
        return self.calls

    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None:
        self.cancelled.append(run_id)
        if self.on_cancel_exit:
            self.calls[agent.name].exit(pb.RUN_CANCELLED, 143, "cancelled")

    async def shutdown(self, agent: AgentRecord) -> None:
        if agent.name in self.unreachable:
            raise errors.AgentUnreachableError(f"could not reach agent {agent.name!r} at {agent.address}: down")
        self.shut_down.append(agent.name)

    async def answers(self, agent: AgentRecord) -> bool:
        return agent.name in self.answering

    def forget(self, name: str) -> None:
        self.forgotten.append(name)

    async def close(self) -> None: ...
