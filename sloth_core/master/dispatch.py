"""Dispatch: turning a Run request into runs on agents and relaying them back.

One request is a *job*; each target agent gets a *run*. A job started by
``Interact`` also takes its caller's input (stdin, or a terminal's
keystrokes), which reaches each run's ``Input`` call through the
:mod:`~sloth_core.master.input_relay`. Every run is relayed
by its own task (master → agent ``Execute`` stream, through the
:class:`~sloth_core.master.agent_link.AgentLink`), so a slow or dead agent
never holds up the others. The caller's stream is fed through a bounded queue:
a slow reader slows the relays, which slows the agents' pipes, so memory
stays bounded however much a command prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sloth_core import errors
from sloth_core.escape import shortened
from sloth_core.master.agent_link import AgentLink, ExecuteCall
from sloth_core.master.events import EventBus
from sloth_core.master.history import run_info
from sloth_core.master.input_relay import DEFAULT_STDIN_CAP, InputFeed, InputRelay, feed_for
from sloth_core.master.output import OutputRecorder, replay_events
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import agent_word
from sloth_core.storage import RunRecord, Storage

log = logging.getLogger(__name__)

JOB_QUEUE = 64  # events; 64 x 64 KiB bounds a job's buffered output to 4 MiB
FOLLOW_QUEUE_BYTES = 16 * 1024 * 1024  # what a `runs show --follow` may lag behind
CANCEL_GRACE_S = 5.0  # the agent's TERM→KILL grace plus slack
TIMEOUT_SLACK_S = 10.0  # the agent enforces timeouts; the master only backs it up
# Runs being asked of their agents at once (asked, not yet started), across
# jobs. A fan-out to 10,000 agents once asked them all in one turn of the
# event loop: 10,000 session writes took 15 s in a single iteration (no beat,
# no Watch event, no CLI meanwhile). Asked all at once through bounded writes
# instead, the loop kept turning but the agents were buried: 20 watching
# consoles saw starts 20 s late. Asked through this window the loop turns over
# every few hundred runs and agents start runs as fast as they can, not
# faster. A run's start comes back at once, so a real fleet's concurrency is
# not bounded: at 50 ms a round trip, 256 places start ~5,000 runs a second.
START_WINDOW = 256


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@dataclass(eq=False)
class Job:
    job_id: str
    runs: list[RunRecord]
    with_output: bool
    queue: asyncio.Queue[pb.RunEvent] = field(default_factory=lambda: asyncio.Queue(JOB_QUEUE))
    pending: int = 0
    detached: bool = False
    _drainer: asyncio.Task[None] | None = None
    input: InputFeed | None = None  # the caller's input (Interact), shared by the job's runs
    error: errors.SlothError | None = None  # taking the caller's input failed: the job ends with it

    def detach(self) -> None:
        """The caller went away: stop feeding its queue and free blocked relays."""
        self.detached = True
        if self._drainer is None and self.pending:
            self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        # Every get releases one relay blocked in put(); keep taking until
        # the last relay is done (then close() cancels this).
        while True:
            await self.queue.get()

    async def put(self, event: pb.RunEvent) -> None:
        """Queue for the caller (the hot path: a plain bounded put)."""
        if not self.detached:
            await self.queue.put(event)

    def close(self) -> None:
        """Every run has finished."""
        if self._drainer is not None:
            self._drainer.cancel()
        elif not self.detached and self.queue.empty():
            # The reader may be waiting on an empty queue: wake it to see
            # that nothing is pending (a non-empty queue wakes it anyway).
            self.queue.put_nowait(pb.RunEvent(job_id=self.job_id))


@dataclass(eq=False)
class Follower:
    """A `runs show --follow` reader of a live run, bounded in bytes."""

    queue: asyncio.Queue[pb.RunEvent | None] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    overflowed: bool = False

    def offer(self, event: pb.RunEvent) -> bool:
        size = len(event.output.data) if event.HasField("output") else 0
        if self.queued_bytes + size > FOLLOW_QUEUE_BYTES:
            # Too slow: end its stream with an error rather than buffer without bound.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False
        self.queued_bytes += size
        self.queue.put_nowait(event)
        return True

    async def get(self) -> pb.RunEvent | None:
        event = await self.queue.get()
        if event is not None and event.HasField("output"):
            self.queued_bytes -= len(event.output.data)
        return event


@dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    job: Job
    recorder: OutputRecorder
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    finishing: bool = False  # the outcome is decided; only reporting it remains
    starting: bool = False  # holds a place in the start window until the agent answers
    asked: bool = False  # the request went to the agent: it must beat until the run ends
    followers: set[Follower] = field(default_factory=set)
    # --env and --cwd go to the agent but not into history: values may be secrets.
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    stdin: bool = False  # the command reads the caller's input
    pty: pb.Pty | None = None  # a terminal session: its output is neither stored nor broadcast


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        storage: Storage,
        bus: EventBus,
        link: AgentLink,
        *,
        output_cap: int,
        runs_per_agent: int,
        on_agent_deleted: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        driver: str = "",
        inputs: InputRelay | None = None,
        stdin_cap: int = DEFAULT_STDIN_CAP,
        start_window: int = START_WINDOW,
    ) -> None:
        self._registry = registry
        # This master's lease id, recorded on its runs (several masters: whose runs die with whom).
        self._driver = driver
        self._storage = storage
        self._bus = bus
        self._link = link
        self._output_cap = output_cap
        self._runs_per_agent = runs_per_agent
        self._on_agent_deleted = on_agent_deleted
        self._clock = clock
        #: Callers' input for runs that take it, read by the agents' Input calls.
        self.inputs = inputs if inputs is not None else InputRelay()
        self._stdin_cap = stdin_cap
        self._start_window = asyncio.Semaphore(start_window)
        self._active: dict[str, ActiveRun] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._since_prune: dict[str, int] = {}
        self._closing = False
        self.finished_runs = 0  # ever, in this process (memory.trim_when_idle watches it)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self._closing = True
        for run in list(self._active.values()):
            if run.task is not None:
                run.task.cancel()
        tasks = [r.task for r in self._active.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE_S)
        await self._link.close()

    # ------------------------------------------------------------ views

    @property
    def busy(self) -> bool:
        """Runs are in flight."""
        return bool(self._active)

    def live_records(self) -> list[RunRecord]:
        """The records of the runs in flight (they change as the runs go on)."""
        return [r.record for r in self._active.values()]

    def active_runs(self) -> list[pb.RunInfo]:
        return [run_info(r.record) for r in self._active.values()]

    # ------------------------------------------------------------ agents

    async def stop_agent(self, name: str) -> None:
        """Ask an online agent to shut down; it shows as stopped at once."""
        rec = self._registry.require(name)
        if rec.status != pb.AGENT_ONLINE:
            raise errors.AgentOfflineError(
                f"agent {rec.name!r} is {agent_word(rec.status)}; only an online agent can be stopped"
            )
        await self._link.shutdown(rec)
        self._registry.mark_stopped(rec.name)

    async def delete_agent(self, name: str) -> None:
        """Forget an agent (and revoke it); a live one is asked to stop as well."""
        rec = self._registry.require(name)
        if rec.status == pb.AGENT_ONLINE:
            # A live agent would just register again: stop it as well.
            try:
                await self._link.shutdown(rec)
            except errors.AgentOfflineError as exc:
                log.warning("deleting %s: %s", rec.name, exc)
        self._registry.delete(rec.name)
        self._link.forget(rec.name)
        if self._on_agent_deleted is not None:
            self._on_agent_deleted(rec.name)

    # ------------------------------------------------------------ jobs

    def start_job(self, request: pb.RunRequest, requested_by: str, *, with_input: bool = False) -> Job:
        """Record the job's runs and start relaying them.

        ``with_input``: the caller sends input (``Interact``); the job gets a
        feed that its runs' ``Input`` calls read.
        """
        command = request.command
        terminal = request.HasField("pty")
        if (terminal or request.stdin) and not with_input:
            raise errors.UsageError("stdin and terminal sessions need the Interact call, not Run")
        if not command.strip() and not terminal:  # under a terminal, none means a login shell
            raise errors.UsageError("empty command: give the command to run")
        if not math.isfinite(request.timeout_s) or request.timeout_s < 0:
            raise errors.UsageError("the timeout must be a positive number of seconds")
        target = request.target
        names = [n for n in target.names if n]
        if not names and not target.labels and not target.all:
            raise errors.UsageError("no target: name agents, use --label, or --all")
        self._storage.check_accepting()  # HistoryUnsavedError: the store is failing and its queue is full
        chosen, rejected = self._registry.resolve(names, target.labels, target.all)
        if not chosen and not rejected:
            raise errors.AgentNotFoundError("no agent matches the target")
        if terminal and len(chosen) + len(rejected) != 1:
            raise errors.ShellTargetError(
                f"a terminal session is with one agent; the target matches {len(chosen) + len(rejected)}"
            )
        now = self._clock()
        job = Job(job_id=new_id("j-"), runs=[], with_output=not request.no_output)
        if with_input:
            job.input = feed_for(len(chosen), self._stdin_cap)
        outcomes = [(name, "") for name in chosen] + rejected
        for name, reason in outcomes:
            job.runs.append(
                RunRecord(
                    run_id=new_id("r-"),
                    job_id=job.job_id,
                    agent=name,
                    command=command,
                    requested_by=requested_by,
                    status=pb.RUN_REJECTED if reason else pb.RUN_PENDING,
                    created_at=now,
                    finished_at=now if reason else 0.0,
                    timeout_s=request.timeout_s,
                    error=reason,
                    driver=self._driver,
                    kind=pb.RUN_SHELL if terminal else pb.RUN_COMMAND,
                )
            )
        self._storage.save_runs(job.runs)
        limit = asyncio.Semaphore(request.parallel) if request.parallel else None
        for rec in job.runs:
            if rec.status == pb.RUN_REJECTED:
                self._bus.run(pb.RunEvent(job_id=rec.job_id, run_id=rec.run_id, agent=rec.agent, finished=run_info(rec)))
                continue
            active = ActiveRun(
                rec, job, OutputRecorder(rec, self._storage, self._output_cap, keep=not terminal),
                env=dict(request.env), cwd=request.cwd,
                stdin=request.stdin and with_input, pty=request.pty if terminal else None,
            )
            self._active[rec.run_id] = active
            if job.input is not None:
                self.inputs.add(rec.run_id, job.input)
            job.pending += 1
            self._registry.run_started(rec.agent)
            active.task = asyncio.create_task(self._relay(active, limit), name=f"relay {rec.run_id}")
        log.info(
            "job %s by %s: %d run(s), %d rejected: %s",
            job.job_id, requested_by, len(chosen), len(rejected),
            "a terminal session" + (f": {shortened(command)}" if command.strip() else "") if terminal
            else shortened(command),
        )
        return job

    async def run(self, request: pb.RunRequest, requested_by: str) -> AsyncGenerator[pb.RunEvent, None]:
        """Start a job and stream it to its caller: the job, then every run's events.

        Leaving early (the caller hung up: Ctrl-C, killed) cancels every run
        still going: nothing it started may keep running.
        """
        job = self.start_job(request, requested_by)
        async with contextlib.aclosing(self._stream(job)) as events:
            async for event in events:
                yield event

    async def interact(
        self, request: pb.RunRequest, requested_by: str, read: Callable[[], Awaitable[pb.RunInput | None]]
    ) -> AsyncGenerator[pb.RunEvent, None]:
        """:meth:`run` for a job that takes its caller's input: ``read()`` gives the next message (None: no more).

        The caller going away cancels the job, as for :meth:`run`: a
        terminal session ends, and a command whose input was cut short is
        stopped and recorded as cancelled rather than left to finish on
        partial input (a half-written file would look like a success).
        """
        job = self.start_job(request, requested_by, with_input=True)
        taker = asyncio.create_task(self._take_input(job, read), name=f"input of {job.job_id}")
        try:
            async with contextlib.aclosing(self._stream(job)) as events:
                async for event in events:
                    yield event
        finally:
            taker.cancel()
            with contextlib.suppress(BaseException):
                await taker
            assert job.input is not None
            job.input.close()
            for rec in job.runs:
                self.inputs.remove(rec.run_id)

    async def _take_input(self, job: Job, read: Callable[[], Awaitable[pb.RunInput | None]]) -> None:
        """Move the caller's input into the job's feed, as fast as its runs take it."""
        feed = job.input
        assert feed is not None
        try:
            while (item := await read()) is not None:
                await feed.put(item)
            # An end of the call without RunInput(eof) is not an EOF: a killed
            # caller's connection can read as one before its cancellation
            # arrives, and cat would then record half a file as a success.
            # Stdin stays open; the caller's hang-up cancels the job.
        except errors.SlothError as exc:
            job.error = exc
            await job.queue.put(pb.RunEvent(job_id=job.job_id))  # wake the stream to end with it

    async def _stream(self, job: Job) -> AsyncGenerator[pb.RunEvent, None]:
        try:
            warning = self._storage.health().warning()  # "history is not being saved: ..." or ""
            yield pb.RunEvent(job_id=job.job_id, job=pb.JobStarted(runs=[run_info(r) for r in job.runs], warning=warning))
            while job.pending:
                event = await job.queue.get()
                if job.error is not None:
                    raise job.error
                if event.WhichOneof("kind") is None:
                    continue  # the wake-up after the last run
                yield event
            while not job.queue.empty():
                event = job.queue.get_nowait()
                if event.WhichOneof("kind") is not None:
                    yield event
        finally:
            if job.pending:
                job.detach()
                self.cancel_job(job)

    async def _emit(self, run: ActiveRun, event: pb.RunEvent) -> None:
        is_output = event.HasField("output")
        if is_output and run.pty is not None:
            # A terminal session's screen is its caller's alone: not in the
            # event feed, not for followers, not in history.
            await run.job.put(event)
            return
        self._bus.run(event)
        for follower in list(run.followers):
            if not follower.offer(event):
                run.followers.discard(follower)
        job = run.job
        if job.with_output or not is_output:
            await job.put(event)

    async def _relay(self, run: ActiveRun, limit: asyncio.Semaphore | None) -> None:
        rec = run.record
        status, exit_code, signal, error = pb.RUN_LOST, -1, 0, ""
        call: ExecuteCall | None = None
        try:
            if run.job.input is not None:
                await run.job.input.ready()  # a fan-out starts once its whole input is here
            async with limit if limit is not None else contextlib.nullcontext():
                await self._start_window.acquire()
                run.starting = True
                agent = self._registry.get(rec.agent)
                if agent is None or agent.status != pb.AGENT_ONLINE:
                    status, error = pb.RUN_REJECTED, f"agent {rec.agent!r} went away before the run started"
                    return
                if run.cancel_requested:
                    status, error = pb.RUN_CANCELLED, "cancelled before it started"
                    return
                run.asked = True
                call = self._link.execute(
                    agent,
                    pb.ExecuteRequest(
                        run_id=rec.run_id, command=rec.command, timeout_s=rec.timeout_s, env=run.env, cwd=run.cwd,
                        stdin=run.stdin, pty=run.pty, beat_interval_s=self._registry.asked(rec.agent),
                    ),
                )
                deadline = rec.timeout_s + TIMEOUT_SLACK_S if rec.timeout_s else None
                async with asyncio.timeout(deadline) as limit_cm:
                    status, exit_code, signal, error = await self._pump(run, call, limit_cm)
        except TimeoutError:
            status, error = pb.RUN_TIMED_OUT, f"no answer from the agent {TIMEOUT_SLACK_S:.0f} s past the timeout"
        except asyncio.CancelledError:
            if self._closing:
                status, error = pb.RUN_LOST, "the master shut down mid-run"
            elif run.job.error is not None:
                status, error = pb.RUN_CANCELLED, f"not run: {run.job.error}"
            else:
                status, error = pb.RUN_CANCELLED, "cancelled"
        except errors.CallCancelledError:
            status, error = pb.RUN_CANCELLED, "cancelled"
        except errors.AgentUnreachableError as exc:
            status, error = pb.RUN_LOST, str(exc)
            if rec.started_at:
                agent = self._registry.get(rec.agent)
                where = agent.address if agent else "?"
                error = f"lost contact with agent {rec.agent!r} at {where} mid-run"
        except errors.SlothError as exc:
            status, error = pb.RUN_LOST, str(exc)
        except Exception as exc:  # a relay must always record an outcome
            log.exception("relay of %s failed", rec.run_id)
            status, error = pb.RUN_LOST, f"internal error: {exc}"
        finally:
            self._started(run)
            if run.asked:
                run.asked = False
                self._registry.answered(rec.agent)
            run.finishing = True
            if call is not None and not call.done():
                call.cancel()
            await self._finish(run, status, exit_code, signal, error)

    def _started(self, run: ActiveRun) -> None:
        """The agent answered (or the run ended): its place in the start window goes to the next run."""
        if run.starting:
            run.starting = False
            self._start_window.release()

    async def _pump(
        self,
        run: ActiveRun,
        call: ExecuteCall,
        limit: asyncio.Timeout,
    ) -> tuple[int, int, int, str]:
        rec = run.record
        ids = {"job_id": rec.job_id, "run_id": rec.run_id, "agent": rec.agent}
        loop = asyncio.get_running_loop()
        async for event in call:
            self._started(run)
            kind = event.WhichOneof("kind")
            if kind == "output":
                run.recorder.add(event.output)
                when = limit.when()
                if when is None:
                    await self._emit(run, pb.RunEvent(**ids, output=event.output))
                else:
                    blocked_from = loop.time()
                    await self._emit(run, pb.RunEvent(**ids, output=event.output))
                    # Time spent waiting on a slow reader is not the agent's.
                    limit.reschedule(when + loop.time() - blocked_from)
            elif kind == "started":
                rec.status = pb.RUN_RUNNING
                rec.started_at = event.started.started_at
                self._storage.save_run(rec)
                await self._emit(run, pb.RunEvent(**ids, started=run_info(rec)))
            elif kind == "exit":
                ex = event.exit
                if ex.started_at:
                    rec.started_at = ex.started_at
                return ex.status, ex.exit_code, ex.signal, ex.error
        status = pb.RUN_CANCELLED if run.cancel_requested else pb.RUN_LOST
        return status, -1, 0, "the agent ended the run without an exit status"

    async def _finish(self, run: ActiveRun, status: int, exit_code: int, signal: int, error: str) -> None:
        rec = run.record
        if run.cancel_requested and status in (pb.RUN_LOST, pb.RUN_FAILED) and signal:
            status = pb.RUN_CANCELLED
        rec.status, rec.exit_code, rec.signal, rec.error = status, exit_code, signal, error
        rec.finished_at = self._clock()
        self.finished_runs += 1
        run.recorder.flush_tail()
        self._storage.save_run(rec)
        self._prune_later(rec.agent)
        self._active.pop(rec.run_id, None)
        self.inputs.remove(rec.run_id)
        if run.job.input is not None and len(run.job.runs) == 1:
            run.job.input.close()  # a caller still sending into an ended run must not wait for room
        self._registry.run_finished(rec.agent)
        event = pb.RunEvent(job_id=rec.job_id, run_id=rec.run_id, agent=rec.agent, finished=run_info(rec))
        try:
            await self._emit(run, event)
        finally:
            for follower in run.followers:
                follower.queue.put_nowait(None)
            run.followers.clear()
            run.job.pending -= 1
            if run.job.pending == 0:
                run.job.close()

    def _prune_later(self, agent: str) -> None:
        """Enforce the retention limit every tenth of it, not after every run."""
        count = self._since_prune.get(agent, 0) + 1
        if count >= max(1, self._runs_per_agent // 10):
            self._storage.prune_runs(agent, self._runs_per_agent)
            count = 0
        self._since_prune[agent] = count

    # ------------------------------------------------------------ cancel

    def cancel(self, run_or_job_id: str) -> list[str]:
        targets = [
            r for r in self._active.values()
            if run_or_job_id in (r.record.run_id, r.record.job_id)
        ]
        for run in targets:
            self._cancel_run(run)
        return [r.record.run_id for r in targets]

    def cancel_job(self, job: Job) -> None:
        for rec in job.runs:
            run = self._active.get(rec.run_id)
            if run is not None:
                self._cancel_run(run)

    def _cancel_run(self, run: ActiveRun) -> None:
        if run.cancel_requested:
            return
        run.cancel_requested = True
        self._spawn(self._cancel_on_agent(run))

    async def _cancel_on_agent(self, run: ActiveRun) -> None:
        """Ask the agent to kill the run (clean exit status); cut the call if it can't."""
        rec = run.record
        if rec.status != pb.RUN_RUNNING:
            # Not started (or its start not seen yet): cutting the call is
            # enough, the agent kills whatever it started when we hang up.
            if run.task is not None and not run.task.done() and not run.finishing:
                run.task.cancel()
            return
        agent = self._registry.get(rec.agent)
        if agent is not None:
            try:
                await self._link.cancel_run(agent, rec.run_id)
            except Exception as exc:  # the fallback below still ends the run
                log.info("cancel of %s on %s: %s", rec.run_id, rec.agent, exc)
        if run.task is not None and not run.task.done():
            await asyncio.wait([run.task], timeout=CANCEL_GRACE_S)
            if not run.task.done() and not run.finishing:
                run.task.cancel()

    # ------------------------------------------------------------ replay

    async def stream_run(self, run_id: str, follow: bool) -> AsyncGenerator[pb.RunEvent, None]:
        """The run's stored output, then (``follow``) its live events until it ends."""
        live = self._active.get(run_id) if follow else None
        follower: Follower | None = None
        if live is not None:
            # Subscribe before reading storage so no event falls in between;
            # what was replayed is skipped when it also arrives live.
            follower = Follower()
            live.followers.add(follower)
        try:
            rec = live.record if live is not None else await self._storage.get_run(run_id)
            if rec is None:
                raise errors.RunNotFoundError(f"unknown run {run_id!r}")
            chunks = await self._storage.read_output(run_id)
            if live is not None:
                chunks = [*chunks, *live.recorder.tail_snapshot()]
            replayed = {c.seq for c in chunks}
            for event in replay_events(rec, chunks):
                yield event
            if follower is None:
                yield pb.RunEvent(job_id=rec.job_id, run_id=rec.run_id, agent=rec.agent, finished=run_info(rec))
                return
            while (event := await follower.get()) is not None:
                if event.HasField("output") and event.output.seq in replayed:
                    continue
                yield event
                if event.HasField("finished"):
                    return
            if follower.overflowed:
                raise errors.TooSlowError("this follower fell too far behind the live output; run it again")
        finally:
            if live is not None and follower is not None:
                live.followers.discard(follower)
