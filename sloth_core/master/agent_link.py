"""The master's calls to its agents: channels, stubs, and what a failed call means.

The dispatcher talks to agents only through an :class:`AgentLink`, so it can
be tested with a fake one (no gRPC). The real one is the
:class:`~sloth_core.master.sessions.SessionHub`: agents dial out, and a run
travels over the session the agent keeps open. Failures reach the
dispatcher as typed errors: :class:`~sloth_core.errors.AgentUnreachableError`
when the agent is gone, :class:`~sloth_core.errors.CallCancelledError` when
the master hung up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord


class ExecuteCall(Protocol):
    """A run in flight on an agent: its events, and a way to hang up."""

    def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]: ...
    def cancel(self) -> bool: ...
    def done(self) -> bool: ...


class AgentLink(Protocol):
    """What the master asks of an agent."""

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> ExecuteCall: ...
    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None: ...
    async def shutdown(self, agent: AgentRecord) -> None: ...
    async def answers(self, agent: AgentRecord) -> bool: ...
    def forget(self, name: str) -> None: ...
    async def close(self) -> None: ...
