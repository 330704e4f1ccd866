"""The one typed API the CLI and the console use to talk to a master.

Everything returns protobuf messages from :mod:`sloth_core.proto.sloth_pb2`;
every gRPC failure becomes a :class:`~sloth_core.errors.SlothError` with a
message a person can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sloth_core import errors
from sloth_core.names import resolve_master_address
from sloth_core.security.names import MASTER_SERVER_NAME

if TYPE_CHECKING:
    import grpc.aio

    from sloth_core.proto import sloth_pb2 as pb
    from sloth_core.transport import TLSConfig

UNARY_TIMEOUT_S = 15.0
# How long one master may take to accept a connection before the next one is tried.
PICK_TIMEOUT_S = 3.0
CREDENTIALS_ENV = "SLOTH_RUNNER_CREDENTIALS"


def map_rpc_error(exc: grpc.aio.AioRpcError, address: str, *, secure: bool = True) -> errors.SlothError:
    """Translate a failed call to the master into the typed error it means."""
    from sloth_core.rpc_errors import error_from_rpc

    return error_from_rpc(exc, address, secure=secure)


def resolve_admin_tls(
    credentials: str | None, master_data_dir: str | Path | None = None
) -> TLSConfig:
    """Admin credentials: ``--credentials``, ``$SLOTH_RUNNER_CREDENTIALS``, else the local master's."""
    import os

    from sloth_core import paths
    from sloth_core.security import credentials as creds

    bundle = credentials or os.environ.get(CREDENTIALS_ENV)
    if bundle:
        return creds.load_admin_bundle(Path(bundle).expanduser())
    data_dir = paths.master_data_dir(master_data_dir)
    try:
        return creds.load_local_admin_tls(data_dir)
    except errors.CredentialsError:
        if _local_master_is_insecure(data_dir):
            raise errors.CredentialsError(
                f"the local master (data dir {data_dir}) runs with --insecure: pass --insecure too"
            ) from None
        raise


def _local_master_is_insecure(data_dir: Path) -> bool:
    from sloth_core.endpoint import read_endpoint

    endpoint = read_endpoint(data_dir)
    return endpoint is not None and endpoint.insecure


# Pauses before each retry of a call the master refused as busy (with jitter):
# about 7 s in all, then the user is told plainly.
BUSY_BACKOFF_S = (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0)


class _BusyRetry:
    """Backoff for calls refused with "master busy"; anything else is raised at once."""

    def __init__(self) -> None:
        import time

        self._tries = 0
        self._started = time.monotonic()

    async def wait_or_raise(self, error: errors.SlothError) -> None:
        import asyncio
        import random
        import time

        if not isinstance(error, errors.MasterBusyError):
            raise error
        if self._tries >= len(BUSY_BACKOFF_S):
            took = time.monotonic() - self._started
            raise errors.MasterBusyError(
                f"{error.message.removesuffix('; try again shortly')}; gave up after "
                f"{self._tries + 1} tries over {took:.1f} s"
            )
        await asyncio.sleep(BUSY_BACKOFF_S[self._tries] * random.uniform(0.5, 1.0))
        self._tries += 1


class MasterClient:
    """An asyncio client of one master. Use as ``async with``, or call :meth:`close`."""

    def __init__(
        self, address: str, tls: TLSConfig | None, *, on_failover: Callable[[str, str], None] | None = None
    ) -> None:
        from sloth_core.master_dns import MasterList

        # The masters as given; a DNS name among them may stand for several (:mod:`sloth_core.master_dns`).
        self._masters = MasterList(address)
        #: The master in use.
        self.address = self.addresses[0]
        self.secure = tls is not None
        self._tls = tls
        self._on_failover = on_failover
        # With one address there is nothing to choose: calls go straight out.
        self._picked = len(self.addresses) == 1 and not self._masters.has_names
        self._failed: str | None = None
        self._open(self.address)

    def _open(self, address: str) -> None:
        from sloth_core import transport
        from sloth_core.proto import sloth_pb2_grpc

        self.address = address
        self._channel = transport.open_channel(address, self._tls, server_name=MASTER_SERVER_NAME)
        self._stub = sloth_pb2_grpc.MasterStub(self._channel)

    async def _reopen(self, address: str) -> None:
        await self._channel.close(grace=None)
        self._open(address)

    @property
    def addresses(self) -> list[str]:
        """Every master this client may use (several: the masters of a cluster, tried in order)."""
        return self._masters.addresses

    def label(self, address: str | None = None) -> str:
        """How the master at ``address`` (default: the one in use) is named to the user."""
        return self._masters.label(address or self.address)

    async def _pick(self) -> None:
        """Use the first master that answers, starting with the one in use (several masters)."""
        if self._picked:
            return
        self._picked = True
        if self._masters.has_names:
            await self._masters.look_up()  # again after a failure: records change
            if self.address not in self.addresses:
                await self._reopen(self.addresses[0])  # the name itself: nothing was tried yet
            if len(self.addresses) == 1:
                return
        start = self.addresses.index(self.address)
        order = self.addresses[start:] + self.addresses[:start]
        if self._failed == self.address:
            order = order[1:] + order[:1]
        self._failed = None
        for address in order:
            if address != self.address:
                previous = self.label()
                await self._reopen(address)
                if self._on_failover is not None:
                    self._on_failover(previous, self.label())
            if await _ready(self._channel, PICK_TIMEOUT_S):
                return
        # None answers: the call that follows reports the failure, naming the last one tried.

    def _note_failure(self, error: errors.SlothError) -> None:
        """The master went away: the next call tries the others first, this one last."""
        if isinstance(error, errors.MasterUnreachableError) and (len(self.addresses) > 1 or self._masters.has_names):
            self._picked = False
            self._failed = self.address

    @classmethod
    def connect(
        cls,
        master: str | None = None,
        *,
        credentials: str | None = None,
        insecure: bool = False,
        master_data_dir: str | Path | None = None,
        on_failover: Callable[[str, str], None] | None = None,
    ) -> MasterClient:
        """Resolve the address and credentials the way every CLI command does."""
        address = resolve_master_address(master, master_data_dir)
        tls = None if insecure else resolve_admin_tls(credentials, master_data_dir)
        return cls(address, tls, on_failover=on_failover)

    async def __aenter__(self) -> MasterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def _unary(self, method: str, request: Any, timeout_s: float = UNARY_TIMEOUT_S) -> Any:
        import grpc.aio

        await self._pick()
        busy = _BusyRetry()
        while True:
            try:
                # The stub of the master in use (a failover replaces it).
                return await getattr(self._stub, method)(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                error = map_rpc_error(exc, self.label(), secure=self.secure)
            if isinstance(error, errors.MasterUnreachableError):
                self._note_failure(error)
                raise error
            await busy.wait_or_raise(error)

    async def _stream(self, start: Callable[[], Any]) -> AsyncIterator[Any]:
        """Iterate the stream ``start()`` opens; a "master busy" before its first message is retried."""
        import grpc.aio

        from sloth_core.rpc_errors import error_from_rpc

        await self._pick()
        busy = _BusyRetry()
        while True:
            call = start()
            received = False
            try:
                async for message in call:
                    received = True
                    yield message
                return
            except grpc.aio.AioRpcError as exc:
                # Once messages have arrived the handshake is long done: an
                # UNAVAILABLE is the master going away, not a refusal of our credentials.
                error = error_from_rpc(exc, self.label(), secure=self.secure, mid_stream=received)
                if received or isinstance(error, errors.MasterUnreachableError):
                    self._note_failure(error)
                    raise error from None
            finally:
                # Leaving the loop early (break, Ctrl-C) must cancel the remote
                # call: the master then cancels the runs it was relaying.
                call.cancel()
            await busy.wait_or_raise(error)

    # ------------------------------------------------------------ agents

    async def list_agents(self) -> list[pb.AgentInfo]:
        from sloth_core.proto import sloth_pb2 as pb

        reply = await self._unary("ListAgents", pb.ListAgentsRequest())
        return list(reply.agents)

    async def get_agent(self, name: str) -> pb.AgentInfo:
        from sloth_core.proto import sloth_pb2 as pb

        return await self._unary("GetAgent", pb.AgentRef(name=name))

    async def stop_agent(self, name: str) -> pb.AgentInfo:
        from sloth_core.proto import sloth_pb2 as pb

        return await self._unary("StopAgent", pb.AgentRef(name=name))

    async def delete_agent(self, name: str) -> None:
        from sloth_core.proto import sloth_pb2 as pb

        await self._unary("DeleteAgent", pb.AgentRef(name=name))

    async def get_status(self) -> pb.MasterStatus:
        """The master's version, start time and store health."""
        from sloth_core.proto import sloth_pb2 as pb

        return await self._unary("GetStatus", pb.GetStatusRequest())

    # ------------------------------------------------------------ runs

    def run(
        self,
        *,
        names: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        all_agents: bool = False,
        command: str,
        timeout_s: float = 0.0,
        parallel: int = 0,
        with_output: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str = "",
    ) -> AsyncIterator[pb.RunEvent]:
        """Start a job and stream its events: the job, then started/output/finished per run."""
        from sloth_core.proto import sloth_pb2 as pb

        try:
            command.encode("utf-8")
        except UnicodeEncodeError:  # bytes from argv that are not UTF-8 (surrogate-escaped)
            raise errors.InvalidArgumentError("the command is not valid UTF-8") from None
        request = pb.RunRequest(
            target=pb.Target(names=list(names), labels=dict(labels or {}), all=all_agents),
            command=command,
            timeout_s=timeout_s,
            parallel=parallel,
            no_output=not with_output,
            env=dict(env or {}),
            cwd=cwd,
        )
        return self._stream(lambda: self._stub.Run(request))

    def interact(self, request: pb.RunRequest) -> Interaction:
        """Open a run that takes input (``request.stdin`` or ``request.pty`` set); see :class:`Interaction`."""
        return Interaction(self, request)

    async def cancel(self, run_or_job_id: str) -> list[str]:
        from sloth_core.proto import sloth_pb2 as pb

        reply = await self._unary("CancelRun", pb.CancelRunRequest(id=run_or_job_id))
        return list(reply.cancelled)

    async def list_runs(
        self,
        *,
        agent: str = "",
        status: int = 0,
        limit: int = 0,
        job_id: str = "",
    ) -> list[pb.RunInfo]:
        from sloth_core.proto import sloth_pb2 as pb

        request = pb.ListRunsRequest(agent=agent, status=status, limit=limit, job_id=job_id)  # type: ignore[arg-type]
        reply = await self._unary("ListRuns", request)
        return list(reply.runs)

    async def get_run(self, run_id: str) -> pb.RunInfo:
        from sloth_core.proto import sloth_pb2 as pb

        return await self._unary("GetRun", pb.RunRef(run_id=run_id))

    def stream_run(self, run_id: str, *, follow: bool = False) -> AsyncIterator[pb.RunEvent]:
        """Replay a run's stored output; with ``follow``, keep streaming while it runs."""
        from sloth_core.proto import sloth_pb2 as pb

        return self._stream(lambda: self._stub.StreamRun(pb.StreamRunRequest(run_id=run_id, follow=follow)))

    def watch(self, *, include_output: bool = False) -> AsyncIterator[pb.WatchEvent]:
        """The live event feed: a snapshot first, then agent and run events."""
        from sloth_core.proto import sloth_pb2 as pb

        return self._unbatch(self._stream(lambda: self._stub.Watch(pb.WatchRequest(include_output=include_output))))

    @staticmethod
    async def _unbatch(batches: AsyncIterator[pb.WatchBatch]) -> AsyncIterator[pb.WatchEvent]:
        try:
            async for batch in batches:
                for event in batch.events:
                    yield event
        finally:
            await batches.aclose()  # type: ignore[attr-defined]


#: Stdin bytes per message: the master refuses more (bounds.Limits.max_input_chunk).
INPUT_CHUNK = 64 * 1024
#: Input messages waiting for the call (each at most INPUT_CHUNK): send() waits beyond this.
INPUT_QUEUE = 4


class Interaction:
    """A run that takes its caller's input: ``agent run`` with stdin, ``agent shell``.

    Iterate it for the run's events (as :meth:`MasterClient.run` gives them:
    the job, then started/output/finished; failures as typed
    :class:`~sloth_core.errors.SlothError`), and meanwhile, from another
    task, :meth:`send` stdin bytes, :meth:`close_input`, :meth:`resize`.
    The call opens when the iteration starts; input waits until the master
    has accepted the job (its first event), so nothing is sent to a master
    that refused the call, and a retry after "master busy" loses nothing.
    Once the call is over, input is dropped (the events say how it ended).
    """

    def __init__(self, client: MasterClient, request: pb.RunRequest) -> None:
        self._client = client
        self._request = request
        # Input for the call, bounded: send() waits while it is full (flow control).
        self._queue: asyncio.Queue[pb.InteractUp | None] = asyncio.Queue(INPUT_QUEUE)
        self._accepted = asyncio.Event()
        self._over = asyncio.Event()
        self._call: Any = None
        self._closed = False  # close_input() was called: nothing but window sizes after it
        self._cancelled = False

    def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[pb.RunEvent]:
        import contextlib

        from sloth_core.proto import sloth_pb2 as pb

        unfinished: set[str] | None = None
        try:
            async with contextlib.aclosing(self._client._stream(self._start)) as events:  # type: ignore[type-var]
                async for event in self._unless_cancelled(events):
                    self._accepted.set()
                    yield event
                    kind = event.WhichOneof("kind")
                    if kind == "job":
                        unfinished = {r.run_id for r in event.job.runs if r.status in (pb.RUN_PENDING, pb.RUN_RUNNING)}
                    elif kind == "finished" and unfinished is not None:
                        unfinished.discard(event.run_id)
                    if unfinished is not None and not unfinished:
                        # Every run has its outcome: hang up ourselves. Waiting
                        # for the master's status while our input is still
                        # flowing can end in INTERNAL (grpc 1.85, a server that
                        # finishes a call its client is still writing to).
                        return
        finally:
            self._end()

    async def _unless_cancelled(self, events: AsyncIterator[pb.RunEvent]) -> AsyncIterator[pb.RunEvent]:
        """``events``, ending with :class:`~sloth_core.errors.CallCancelledError` after :meth:`cancel`.

        grpc raises ``asyncio.CancelledError`` from a call cancelled locally,
        which would look like the caller's own task being cancelled.
        """
        try:
            async for event in events:
                yield event
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._cancelled and (task is None or not task.cancelling()):
                raise errors.CallCancelledError("the session was cancelled") from None
            raise

    def _start(self) -> Any:
        self._call = self._client._stub.Interact(self._requests())
        return self._call

    async def _requests(self) -> AsyncIterator[pb.InteractUp]:
        from sloth_core.proto import sloth_pb2 as pb

        yield pb.InteractUp(request=self._request)
        await self._accepted.wait()
        while (message := await self._queue.get()) is not None:
            yield message
        # After EOF the caller's side of the call is closed (half-close).

    async def _put(self, message: pb.InteractUp | None) -> None:
        if not self._over.is_set():
            await self._queue.put(message)  # a sender waiting here is freed by _end()

    def _end(self) -> None:
        """The call is over: input has nowhere to go; free any sender waiting for room."""
        self._over.set()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def send(self, data: bytes) -> None:
        """Stdin bytes for the run; waits while the master (and the command) are behind."""
        from sloth_core.proto import sloth_pb2 as pb

        if self._closed:
            return
        if len(data) <= INPUT_CHUNK:
            await self._put(pb.InteractUp(input=pb.RunInput(stdin=bytes(data))))
            return
        view = memoryview(data)
        for start in range(0, len(view), INPUT_CHUNK):
            await self._put(pb.InteractUp(input=pb.RunInput(stdin=bytes(view[start : start + INPUT_CHUNK]))))

    async def close_input(self) -> None:
        """End the run's stdin (EOF); a terminal takes Ctrl-D as a byte instead."""
        from sloth_core.proto import sloth_pb2 as pb

        if self._closed:
            return
        self._closed = True
        await self._put(pb.InteractUp(input=pb.RunInput(eof=True)))
        await self._put(None)

    async def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size (a terminal session)."""
        from sloth_core.proto import sloth_pb2 as pb

        if not self._closed:
            await self._put(pb.InteractUp(input=pb.RunInput(resize=pb.WindowSize(rows=rows, cols=cols))))

    def cancel(self) -> None:
        """End the call: the master cancels the run (a terminal session ends, its processes are killed).

        The iteration then ends with :class:`~sloth_core.errors.CallCancelledError`.
        """
        self._cancelled = True
        self._end()
        if self._call is not None:
            self._call.cancel()


async def _ready(channel: Any, timeout_s: float) -> bool:
    """Whether ``channel`` connects within ``timeout_s``; a refused connection says no at once."""
    import grpc

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except TimeoutError:
            return False
        state = channel.get_state(try_to_connect=True)
    return True
