"""Agents' sessions: the stream each agent keeps open to the master.

The master never dials an agent. :class:`SessionHub` holds the live
sessions by agent name and is the dispatcher's
:class:`~sloth_core.master.agent_link.AgentLink`: a run request goes down the
agent's session, and the run's events come back on the ``Report`` call the
agent opens for it (:meth:`SessionHub.attach`), or, for a run that ended at
once with little output, all together on the session itself
(:meth:`SessionHub.done`). No gRPC here: the servicer
(:mod:`sloth_core.master.session_service`) feeds it, so unit tests can too.

When a session ends (the agent's socket closed, or the registry gave up on
a frozen agent), every run still waiting on it fails at once as
unreachable, and the Report calls of its runs are hung up so the agent,
if it is only frozen, kills them when it wakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord

log = logging.getLogger(__name__)

RUN_QUEUE = 16  # events buffered per run between the agent's call and the relay
# A whole run reported on the session: the agent sends at most a few events
# (started, output up to 16 KiB, exit); more is a misbehaving agent.
MAX_DONE_EVENTS = 64
# Messages being written to agents' sessions at once, across all sessions.
# Run requests are already paced by the dispatcher's start window; this also
# bounds what is not (cancelling a 10,000-run job writes 10,000 cancels), so
# no burst of writes holds the event loop in one turn (see START_WINDOW).
WRITES_AT_ONCE = 256


@dataclass(eq=False)
class Session:
    """One agent's open Connect stream."""

    name: str
    instance_id: str
    # None ends the stream from the master's side once what is queued is sent.
    outbox: asyncio.Queue[pb.MasterDown | None] = field(default_factory=asyncio.Queue)
    pace_s: float = 0.0
    task: asyncio.Task[object] | None = None  # the Connect handler
    runs: dict[str, SessionRun] = field(default_factory=dict)

    def send(self, message: pb.MasterDown) -> None:
        self.outbox.put_nowait(message)


class SessionRun:
    """A run asked of an agent: its events as they arrive on the agent's Report call."""

    def __init__(self, session: Session, agent: AgentRecord, run_id: str, index: dict[str, str] | None = None) -> None:
        self._session = session
        self._index = index if index is not None else {}
        self._agent = agent
        self.run_id = run_id
        # An item is one event, or a whole run's (reported on the session).
        self._queue: asyncio.Queue[pb.ExecuteEvent | list[pb.ExecuteEvent] | BaseException | None] = asyncio.Queue(
            RUN_QUEUE
        )
        self._done = False  # the relay has read the end
        self._ended = False  # the end is queued
        self.reporter: asyncio.Future[None] | None = None  # set once attached; resolved to hang up
        self.started = False
        self.exited = False
        self.hung_up = False  # the master hung up on purpose

    # ------------------------------------------------------------ the relay's side

    async def __aiter__(self) -> AsyncIterator[pb.ExecuteEvent]:
        while True:
            item = await self._queue.get()
            if item is None:
                self._done = True
                return
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if isinstance(item, list):
                self._done = True
                for event in item:
                    yield event
                return
            if item.HasField("exit"):
                # Done before the reader sees it: it stops reading at the exit.
                self._done = True
                yield item
                return
            yield item

    def cancel(self) -> bool:
        """The master hangs up: the agent kills the run (now, or when it wakes)."""
        if self._done:
            return False
        self.hung_up = True
        self._forget()
        if self.reporter is not None:
            self._hang_up()
        elif self._session.task is not None and not self._session.task.done():
            # Asked but not reported yet: the agent will find no one listening.
            self._session.send(pb.MasterDown(cancel=pb.CancelRequest(run_id=self.run_id)))
        self._end(errors.CallCancelledError("cancelled"))
        return True

    def done(self) -> bool:
        return self._done

    # ------------------------------------------------------------ the Report call's side

    async def deliver(self, event: pb.ExecuteEvent) -> None:
        """One event from the agent; waits while the relay is behind (back pressure)."""
        if event.HasField("started"):
            self.started = True
        elif event.HasField("exit"):
            self.exited = True
        await self._queue.put(event)

    def take_started(self, event: pb.ExecuteEvent) -> None:
        """The run's start, reported on the session ahead of the rest (which follows whole or on a call)."""
        if self._ended or self.started or not event.HasField("started"):
            return
        self.started = True
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # a call already filled it: its events carry on, the start is known
            pass

    def take_whole(self, events: list[pb.ExecuteEvent]) -> None:
        """The agent reported the whole run at once, on its session (no Report call)."""
        if self._ended or self.reporter is not None:
            return  # cancelled meanwhile, or reported on a call: the session's copy is not wanted
        if not events or not events[-1].HasField("exit") or len(events) > MAX_DONE_EVENTS:
            self.fail(errors.AgentUnreachableError(
                f"agent {self._agent.name!r} reported run {self.run_id} without an exit status"))
            return
        self.started = self.exited = True
        self._forget()
        self._ended = True
        # Room: at most its start was queued for a run not reported on a call.
        self._queue.put_nowait(events)

    def reported_all(self) -> None:
        """The Report call ended; without an exit, the agent died mid-run (its socket closed)."""
        if not self.exited:
            self.fail(errors.AgentUnreachableError(f"lost contact with agent {self._agent.name!r} mid-run"))
            return
        self._forget()
        self._end(None)

    def fail(self, exc: errors.SlothError) -> None:
        if self._ended:
            return
        self._forget()
        self._hang_up()
        self._end(exc)

    def _hang_up(self) -> None:
        if self.reporter is not None and not self.reporter.done():
            self.reporter.set_result(None)

    def _forget(self) -> None:
        self._session.runs.pop(self.run_id, None)
        self._index.pop(self.run_id, None)

    def _end(self, item: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # The relay is behind; it gets the end after what it has not read yet.
            task = asyncio.ensure_future(self._queue.put(item))
            task.add_done_callback(lambda _t: None)


class SessionHub:
    """Live sessions by agent name; the dispatcher's link to its agents."""

    def __init__(self, writes_at_once: int = WRITES_AT_ONCE) -> None:
        #: Held by each write to a session (see WRITES_AT_ONCE).
        self.writing = asyncio.Semaphore(writes_at_once)
        self._sessions: dict[str, Session] = {}
        self._run_agents: dict[str, str] = {}  # run id -> the agent it was asked of

    # ------------------------------------------------------------ sessions

    def open(self, name: str, instance_id: str, task: asyncio.Task[object] | None) -> Session:
        """A new session for ``name``; an older one (a previous instance) is ended."""
        old = self._sessions.get(name)
        if old is not None:
            self.drop(old, "the agent connected again")
        session = Session(name, instance_id, task=task)
        self._sessions[name] = session
        return session

    def ended(self, session: Session, why: str) -> None:
        """The Connect stream ended: runs waiting on it fail now."""
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
        for run in list(session.runs.values()):
            where = "mid-run" if run.started else "before the run started"
            run.fail(errors.AgentUnreachableError(f"lost contact with agent {session.name!r} {where}: {why}"))

    def drop(self, session: Session, why: str) -> None:
        """End ``session`` from the master's side (frozen, deleted, replaced).

        What is queued (a shutdown request) is sent first, then the stream
        ends: a live agent sees the end and says hello again.
        """
        self.ended(session, why)
        session.outbox.put_nowait(None)

    def drop_agent(self, name: str, why: str) -> None:
        session = self._sessions.get(name)
        if session is not None:
            self.drop(session, why)

    def session(self, name: str) -> Session | None:
        return self._sessions.get(name)

    def connected(self, name: str, instance_id: str | None = None) -> bool:
        session = self._sessions.get(name)
        return session is not None and (instance_id is None or session.instance_id == instance_id)

    def agent_of(self, run_id: str) -> str:
        """The agent run ``run_id`` was asked of (only it may report the run)."""
        name = self._run_agents.get(run_id)
        if name is None:
            raise errors.RunNotFoundError(f"run {run_id!r} is not waiting for a report")
        return name

    def started(self, session: Session, report: pb.RunReport) -> None:
        """A run's start, reported on ``session``; ignored for a run it was not asked (or no longer waits for)."""
        run = session.runs.get(report.run_id)
        if run is not None:
            run.take_started(report.event)

    def done(self, session: Session, report: pb.RunDone) -> None:
        """A whole run reported on ``session``; one it was not asked (or no longer waits for) is ignored."""
        run = session.runs.get(report.run_id)
        if run is not None:
            run.take_whole(list(report.events))

    def attach(self, name: str, run_id: str) -> SessionRun:
        """The agent ``name`` opened the Report call for ``run_id``."""
        session = self._sessions.get(name)
        run = session.runs.get(run_id) if session is not None else None
        if run is None or run.reporter is not None:
            raise errors.RunNotFoundError(f"run {run_id!r} is not waiting for agent {name!r}")
        run.reporter = asyncio.get_running_loop().create_future()
        return run

    # ------------------------------------------------------------ AgentLink

    def _require(self, agent: AgentRecord) -> Session:
        session = self._sessions.get(agent.name)
        if session is None:
            raise errors.AgentUnreachableError(f"agent {agent.name!r} has no session with this master")
        return session

    def execute(self, agent: AgentRecord, request: pb.ExecuteRequest) -> SessionRun:
        session = self._sessions.get(agent.name)
        if session is None:
            # Fails on the first read, as a refused call would.
            orphan = SessionRun(Session(agent.name, ""), agent, request.run_id)
            orphan.fail(errors.AgentUnreachableError(f"could not reach agent {agent.name!r}: it has no session"))
            return orphan
        run = SessionRun(session, agent, request.run_id, self._run_agents)
        session.runs[request.run_id] = run
        self._run_agents[request.run_id] = agent.name
        session.send(pb.MasterDown(execute=request))
        return run

    async def cancel_run(self, agent: AgentRecord, run_id: str) -> None:
        self._require(agent).send(pb.MasterDown(cancel=pb.CancelRequest(run_id=run_id)))

    async def shutdown(self, agent: AgentRecord) -> None:
        self._require(agent).send(pb.MasterDown(shutdown=pb.ShutdownRequest()))

    async def answers(self, agent: AgentRecord) -> bool:
        return self.connected(agent.name, agent.instance_id)

    def forget(self, name: str) -> None:
        self.drop_agent(name, "the agent was deleted")

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            self.drop(session, "the master is shutting down")
