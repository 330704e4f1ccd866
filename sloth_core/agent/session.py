"""The agent's one connection to its master: it dials out, the master never dials in.

:class:`MasterSession` keeps one ``AgentSession.Connect`` stream open:
hello first (the registration), then beats up (as often as the master's
pace says: rarely, in a big fleet); run requests, cancels and shutdown come
down. A run's start goes up the session at once (``AgentUp.started``); a
run that exits within :data:`WHOLE_RUN_WAIT_S` with little output then goes
up whole on it (``AgentUp.done``); for any other the agent opens a
``Report`` call and writes that run's events on it; when the master hangs up
that call, the run is killed. A lost
stream is re-opened with capped backoff, and the master learns we are
back from the hello.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import platform
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from sloth_core import __version__, errors
from sloth_core.agent.facts import FAST_INTERVAL_S, FactsReporter, read_facts
from sloth_core.agent.runs import RunTable
from sloth_core.client import map_rpc_error
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.security.names import MASTER_SERVER_NAME
from sloth_core.transport import AGENT_CHANNEL_OPTIONS, TLSConfig, open_channel

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 3.0
# A big fleet waits longer between attempts: 10,000 agents retrying every
# 3 s after a master restart were 3,300 TLS handshakes and hellos a second,
# more than the master could finish before the agents gave up and tried
# again (99 back in 75 s; the accept queue full, the CLI locked out). The
# master's pace (beats paced to the fleet's size: 333 s at 10,000) tells the
# agent how big its fleet is; its reconnect backoff grows up to this share of
# it, and the hello waits as long, so a slow answer is not thrown away.
BACKOFF_SHARE_OF_PACE = 0.15  # 5 s at 1,000 agents, 50 s at 10,000
BACKOFF_CEILING_S = 60.0
# A plaintext agent whose master refuses plaintext this many times in a row
# stops. (One refusal can be a connection cut mid-handshake.)
TLS_REFUSALS_FATAL = 3
HELLO_TIMEOUT_S = 10.0
# A run reported whole on the session must have exited within this and
# printed at most WHOLE_RUN_BYTES; any other opens a Report call. A call per
# run was most of a fan-out's cost on both sides: reported whole, a
# 1,000-agent `run --all true` cost the master 0.6 s of CPU instead of 1.1 s.
# Under a fan-out a quick command takes hundreds of milliseconds to be
# spawned, reaped and read (0.2 s let almost none through), so the wait is
# long; but output waits at most WHOLE_RUN_OUTPUT_WAIT_S for the exit, so a
# long command's output is live all the same (its start goes up at once).
WHOLE_RUN_WAIT_S = 1.0
WHOLE_RUN_OUTPUT_WAIT_S = 0.1
WHOLE_RUN_BYTES = 16 * 1024
LEAVE_TIMEOUT_S = 1.0


@dataclass
class AgentProfile:
    """What this agent tells the master about itself in its hello."""

    name: str
    address: str  # where it also listens (--port), else ""
    instance_id: str
    labels: dict[str, str] = field(default_factory=dict)
    facts: bool = True  # report facts about the machine (load, memory, disk...)
    facts_interval_s: float = FAST_INTERVAL_S  # tests shorten it
    facts_proc: str = "/proc"  # tests point it at a /proc of their own


class MasterSession:
    """Register, beat, take run requests; reconnect when the stream breaks."""

    def __init__(
        self,
        master: str,
        tls: TLSConfig | None,
        profile: AgentProfile,
        runs: RunTable,
        on_shutdown: Callable[[], None],
    ) -> None:
        from sloth_core.master_dns import MasterList

        #: Every master of the cluster we may use, in order (``a:50053,b:50053``; a DNS
        #: name may stand for several: :mod:`sloth_core.master_dns`).
        self._masters = MasterList(master)
        self._master = self._masters.addresses[0]
        self._tls = tls
        self._insecure = tls is None
        self._profile = profile
        self._runs = runs
        self._on_shutdown = on_shutdown
        self._open(self._master)
        self._call: Any = None
        self._reports: set[asyncio.Task[None]] = set()
        self._writing = asyncio.Lock()  # grpc takes one write at a time on the session
        # While runs are in flight the agent beats as often as their requests say.
        self.busy_interval_s = 2.0
        self._got_work = asyncio.Event()
        self.interval_s = 5.0
        self.registered = asyncio.Event()
        self.facts = FactsReporter(
            enabled=profile.facts,
            interval_s=profile.facts_interval_s,
            read=functools.partial(read_facts, proc=Path(profile.facts_proc)),
        )

    def _open(self, master: str) -> None:
        self._master = master
        self._channel = open_channel(master, self._tls, server_name=MASTER_SERVER_NAME, options=AGENT_CHANNEL_OPTIONS)
        self._stub = sloth_pb2_grpc.AgentSessionStub(self._channel)

    @property
    def master_label(self) -> str:
        """The master in use as the log names it (with the name it was resolved from)."""
        return self._masters.label(self._master)

    async def _next_master(self) -> None:
        """Several masters: after a broken session, say hello to the next one (failover)."""
        if self._masters.has_names:
            await self._masters.look_up()  # again after a failure: records change
        masters = self._masters.addresses
        if len(masters) < 2 and self._master in masters:
            return
        # (A master no longer among the names' addresses counts as the last: the first is next.)
        index = masters.index(self._master) if self._master in masters else -1
        await self._switch(masters[(index + 1) % len(masters)])
        log.info("trying the master at %s", self.master_label)

    async def _switch(self, master: str) -> None:
        old = self._channel
        self._open(master)
        # Report calls of runs in flight ride the old channel; the master that
        # dropped us has lost those runs already, so closing it kills nothing live.
        await old.close(grace=None)

    def _hello(self, facts: pb.Facts | None = None) -> pb.AgentUp:
        profile = self._profile
        return pb.AgentUp(hello=pb.RegisterRequest(
            facts=facts,
            name=profile.name,
            address=profile.address,
            version=__version__,
            hostname=socket.gethostname(),
            os=f"{platform.system()} {platform.release()}",
            labels=profile.labels,
            instance_id=profile.instance_id,
        ))

    async def register_once(self) -> None:
        """Open the session; raises a user-facing error for anything that will not heal by waiting."""
        if not self._masters.looked_up:
            await self._masters.look_up()
            if self._master not in self._masters.addresses:
                await self._switch(self._masters.addresses[0])  # the name itself: nothing was tried yet
        # Facts are read before the call opens: a call that fails while we
        # wait would refuse the write with InvalidStateError, not an RPC error.
        facts = await self.facts.hello()
        call = self._stub.Connect()
        try:
            async with asyncio.timeout(max(HELLO_TIMEOUT_S, self.backoff_cap_s())):
                await call.write(self._hello(facts))
                first = await call.read()
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise map_rpc_error(exc, self.master_label, secure=not self._insecure) from None
        except TimeoutError:
            call.cancel()
            raise errors.MasterUnreachableError(f"the master at {self.master_label} did not answer our hello") from None
        if first is grpc.aio.EOF or not first.HasField("welcome"):
            call.cancel()
            raise errors.MasterUnreachableError(f"the master at {self.master_label} ended our session at once")
        self.interval_s = first.welcome.heartbeat_interval_s or self.interval_s
        if not self.registered.is_set():
            where = f" ({self._profile.address})" if self._profile.address else ""
            log.info("registered with the master at %s as %s%s", self.master_label, self._profile.name, where)
        elif len(self._masters.addresses) > 1:
            log.info("registered with the master at %s", self.master_label)
        self.registered.set()
        self._call = call

    async def run(self, already_said: str = "") -> None:
        """Serve the session until cancelled, re-opening it whenever it breaks.

        ``already_said`` is a complaint the caller already logged.
        """
        backoff = BACKOFF_START_S
        complained = already_said
        refusals = 0
        while True:
            try:
                if self._call is None:
                    await self.register_once()
                if complained:
                    log.info("the master at %s answers again", self.master_label)
                    complained = ""
                backoff = BACKOFF_START_S
                refusals = 0
                await self._serve(self._call)
                log.info("the master at %s ended our session; connecting again", self.master_label)
                error: errors.SlothError | None = None  # the master ended it: just reconnect
            except grpc.aio.AioRpcError as exc:
                error = map_rpc_error(exc, self.master_label, secure=not self._insecure)
            except errors.SlothError as exc:
                error = exc
            refusals = refusals + 1 if isinstance(error, errors.TLSRefusedError) else 0
            if self._insecure and error is not None and refusals >= TLS_REFUSALS_FATAL:
                # Our plaintext port (with --port) must not stay open for a
                # master that now requires TLS.
                raise errors.TLSRefusedError(self.explain(error))
            if error is not None:
                complained = self._complain(error, complained)
            self._call = None
            await self._next_master()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(self.backoff_cap_s(), backoff * 2)

    def backoff_cap_s(self) -> float:
        """The longest wait between attempts to reach the master: longer in a bigger fleet."""
        return min(BACKOFF_CEILING_S, max(BACKOFF_MAX_S, self.interval_s * BACKOFF_SHARE_OF_PACE))

    async def _serve(self, call: Any) -> None:
        beats = asyncio.create_task(self._beat(call), name="beats")
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                kind = message.WhichOneof("kind")
                if kind == "execute":
                    self.busy_interval_s = message.execute.beat_interval_s or self.busy_interval_s
                    self._start_report(message.execute, call)
                    self._got_work.set()
                elif kind == "cancel":
                    self._runs.cancel(message.cancel.run_id)
                elif kind == "pace":
                    self.interval_s = message.pace.heartbeat_interval_s or self.interval_s
                elif kind == "shutdown":
                    log.info("the master asked this agent to shut down")
                    self._on_shutdown()
        finally:
            beats.cancel()

    async def _beat(self, call: Any) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        idle_s = self.interval_s * random.uniform(0.8, 1.0)
        while True:
            if self._reports:
                await asyncio.sleep(self.busy_interval_s * random.uniform(0.8, 1.0))
                if not self._reports and loop.time() - last < idle_s:
                    continue  # the runs ended meanwhile (reported, which counts as word): no beat owed
            else:
                self._got_work.clear()
                try:
                    async with asyncio.timeout(max(0.0, last + idle_s - loop.time())):
                        await self._got_work.wait()
                    continue  # work came in while idle: the next beat is due at the busy interval
                except TimeoutError:
                    pass
            last = loop.time()
            idle_s = self.interval_s * random.uniform(0.8, 1.0)
            facts = await self.facts.for_beat()  # only what changed, at most every 15 s
            async with self._writing:
                await call.write(pb.AgentUp(beat=pb.Beat(running=self._runs.running, facts=facts)))
            self.facts.delivered()

    # ------------------------------------------------------------ runs

    def _start_report(self, request: pb.ExecuteRequest, session: Any) -> None:
        task = asyncio.create_task(self._report(request, session), name=f"run {request.run_id}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, request: pb.ExecuteRequest, session: Any) -> None:
        """Run it; report it whole on ``session`` if it ends at once, else on a Report call."""
        run_id = request.run_id
        inputs = self._input_of(run_id) if request.stdin or request.HasField("pty") else None
        try:
            events = self._runs.start_request(request, inputs)
        except errors.SlothError as exc:
            failed = pb.ExecuteEvent(exit=pb.ExecExit(status=pb.RUN_FAILED, exit_code=-1, error=str(exc)))
            await self._report_whole(session, run_id, [failed])
            return
        # Closed here: a run whose report cannot be delivered is killed now.
        async with contextlib.aclosing(events):
            head: list[pb.ExecuteEvent] = []
            pending: asyncio.Future[pb.ExecuteEvent] | None = None
            try:
                if inputs is None:  # input or a terminal: the caller is waiting for the first byte
                    head, pending, whole = await self._first_events(events, session, run_id)
                    if whole:
                        await self._report_whole(session, run_id, head)
                        return
                await self._report_on_call(run_id, events, head, pending)
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()  # the run's generator ends (and kills the process group) with it
                    with contextlib.suppress(BaseException):
                        await pending

    async def _first_events(
        self, events: AsyncIterator[pb.ExecuteEvent], session: Any, run_id: str
    ) -> tuple[list[pb.ExecuteEvent], asyncio.Future[pb.ExecuteEvent] | None, bool]:
        """A run's events while it may still be reported whole: (events, the next one if awaited, whole).

        Its start goes up on the session at once (consoles show it running;
        under a fan-out the exit can be seconds away), not among the events.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WHOLE_RUN_WAIT_S
        head: list[pb.ExecuteEvent] = []
        size = 0
        while True:
            # Waited for with a timeout but never cancelled by it: the
            # generator cannot take a cancellation and go on.
            upcoming: asyncio.Future[pb.ExecuteEvent] = asyncio.ensure_future(anext(events))  # type: ignore[arg-type]
            done, _ = await asyncio.wait({upcoming}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                return head, upcoming, False
            event = upcoming.result()  # no StopAsyncIteration: a run's events end with its exit
            if event.HasField("started"):
                await self._write_up(session, run_id, pb.AgentUp(started=pb.RunReport(run_id=run_id, event=event)))
                continue
            head.append(event)
            if event.HasField("exit"):
                return head, None, True
            if event.HasField("output"):
                size += len(event.output.data)
                if size > WHOLE_RUN_BYTES:
                    return head, None, False
                deadline = min(deadline, loop.time() + WHOLE_RUN_OUTPUT_WAIT_S)

    async def _report_whole(self, session: Any, run_id: str, events: list[pb.ExecuteEvent]) -> None:
        await self._write_up(session, run_id, pb.AgentUp(done=pb.RunDone(run_id=run_id, events=events)))

    async def _write_up(self, session: Any, run_id: str, message: pb.AgentUp) -> None:
        """Write a run's report on the session it was asked on."""
        try:
            async with self._writing:
                await session.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            # The session broke: the master has counted the run lost already.
            log.info("run %s: not reported, the session ended (%s)", run_id, exc)

    async def _report_on_call(
        self,
        run_id: str,
        events: AsyncIterator[pb.ExecuteEvent],
        head: list[pb.ExecuteEvent],
        pending: asyncio.Future[pb.ExecuteEvent] | None,
    ) -> None:
        """Write the run's events on a Report call; a hung-up call kills the run."""
        call = self._stub.Report()
        # The master hanging up (a cancel, or the master gone) ends the call
        # even while the command prints nothing: kill the run then.
        call.add_done_callback(lambda _call: self._runs.cancel(run_id))
        try:
            for event in head:
                await call.write(pb.RunReport(run_id=run_id, event=event))
            if pending is not None:
                await call.write(pb.RunReport(run_id=run_id, event=await pending))
            async for event in events:
                await call.write(pb.RunReport(run_id=run_id, event=event))
            await call.done_writing()
            await call
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            log.info("run %s: the master hung up (%s)", run_id, detail)
        finally:
            if not call.done():
                call.cancel()

    def _input_of(self, run_id: str) -> Callable[[], AsyncIterator[pb.RunInput]]:
        """Opens the run's ``Input`` call (once its command runs): the caller's stdin, keystrokes, sizes."""

        async def read() -> AsyncIterator[pb.RunInput]:
            call = self._stub.Input(pb.InputRequest(run_id=run_id))
            try:
                async for item in call:
                    yield item
            except grpc.aio.AioRpcError as exc:
                # The input ends here (the command sees EOF); the run's own
                # Report call says whether the run lives on.
                if exc.code() != grpc.StatusCode.CANCELLED:
                    log.info("run %s: its input broke off (%s)", run_id, exc.details())
            finally:
                call.cancel()

        return read

    # ------------------------------------------------------------ leaving

    def explain(self, exc: errors.SlothError) -> str:
        """What a refused call means for this agent (it has no --credentials)."""
        if not isinstance(exc, errors.CredentialsError):
            return str(exc)
        if self._insecure:
            return (
                f"the master at {self.master_label} refused our plaintext connection: it requires TLS; "
                "start this agent without --insecure"
            )
        return (
            f"the master at {self.master_label} refused our certificate; "
            "re-join with --token (get one with `sloth-runner master token`)"
        )

    def _complain(self, exc: errors.SlothError, last: str) -> str:
        message = self.explain(exc)
        if message != last:
            log.warning("%s; retrying", message)
        return message

    async def leave(self, timeout_s: float = LEAVE_TIMEOUT_S) -> None:
        """Tell the master we are stopping on purpose (best effort)."""
        call = self._call
        if call is None or call.done():
            return
        try:
            async with asyncio.timeout(timeout_s):
                async with self._writing:
                    await call.write(pb.AgentUp(goodbye=pb.Goodbye()))
                    await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
        except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.info("could not tell the master we are leaving: %s", exc)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled ourselves
            # The call was cancelled under us (the session loop was stopped
            # mid-read): nothing more to say on it, and the agent stops cleanly.
            log.info("could not tell the master we are leaving: the session was already closed")

    async def close(self) -> None:
        for task in list(self._reports):
            task.cancel()
        if self._reports:
            await asyncio.wait(self._reports, timeout=LEAVE_TIMEOUT_S)
        if self._call is not None:
            self._call.cancel()
        await self._channel.close(grace=None)
