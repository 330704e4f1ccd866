"""The operator console: the App, its workers, and the entry points.

The app owns the only link to the master (a :class:`MasterClient` made by
the injected factory) and the workers that read its streams. Workers post
plain messages (:mod:`sloth_tui.messages`); the app queues them in the
:class:`~sloth_tui.model.feed.Feed`, which folds them into the fleet and the
runs, and publishes what changed on signals the screens subscribe to.
Widgets never touch gRPC.

Live data comes from three kinds of stream:

* ``Watch`` (one, for the console's lifetime, ``include_output=False``): the
  fleet and which runs are in flight. Output stays off that feed on purpose:
  with a large fleet it would carry every byte every agent prints, for
  panes the operator mostly never opens, and duplicate what our own ``Run``
  streams already deliver.
* ``Run`` (one per job started here): that job's events and output.
* ``StreamRun``: another operator's run (``follow=True``) or a replay from
  history, only when the operator opens it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from rich.text import Text
from textual.app import App, SystemCommand
from textual.dom import DOMNode
from textual.screen import Screen
from textual.signal import Signal
from textual.widget import Widget
from textual.widgets import Input

from sloth_core import errors
from sloth_core.errors import SlothError
from sloth_tui import keymap
from sloth_tui.batching import Coalescer
from sloth_tui.commands import SlothCommands
from sloth_tui.messages import ConnectionChanged, HistoryLoaded, RunBatch, RunStreamEnded, WatchBatch
from sloth_tui.model import fmt
from sloth_tui.model.connection import CONNECTED, Connection
from sloth_tui.model.feed import Changes, Feed
from sloth_tui.model.fleet import FleetChanges, FleetModel
from sloth_tui.model.prompt_history import PromptHistory
from sloth_tui.model.run_options import RunOptions
from sloth_tui.model.runs import DEFAULT_MAX_LINES, RunsChanged, RunStore, RunView
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.fleet import FleetScreen
from sloth_tui.screens.help import HelpScreen
from sloth_tui.shell import ShellLauncher, ShellResult

if TYPE_CHECKING:
    from sloth_core.client import MasterClient
    from sloth_core.proto import sloth_pb2 as pb

ClientFactory = Callable[[], "MasterClient"]
T = TypeVar("T")

DEFAULT_CONFIRM_OVER = 5
CONFIRM_ENV = "SLOTH_RUNNER_CONFIRM_OVER"
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)
WATCH_BATCH_S = 0.1
OUTPUT_BATCH_S = 0.05


class SlothApp(App[int]):
    """The sloth-runner operator console.

    App-wide state reaches the screens through signals they subscribe to
    (as in Posting): ``fleet_signal`` (agents changed; None: redraw every
    row), ``runs_signal`` (runs and their output), ``tick_signal`` (once a
    second, the console's clock), ``connection_signal``, ``history_signal``
    (an agent's past runs) and ``health_signal`` (is the master saving history).
    """

    CSS_PATH = "app.tcss"
    TITLE = "sloth-runner"
    BINDINGS = keymap.bindings("app")
    COMMANDS = App.COMMANDS | {SlothCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        clock: Callable[[], float] = time.time,
        history_path: Path | None = None,
        confirm_over: int = DEFAULT_CONFIRM_OVER,
        max_lines: int = DEFAULT_MAX_LINES,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        target: str = "",
        watch_batch_s: float = WATCH_BATCH_S,
        output_batch_s: float = OUTPUT_BATCH_S,
        shell: ShellLauncher | None = None,
    ) -> None:
        super().__init__()
        self._client_factory = client_factory
        self.shell = shell
        """How ``s`` opens `agent shell` on this master; None: not offered (no CLI to run)."""
        self.clock = clock
        self.confirm_over = confirm_over
        self.reconnect_delays = tuple(reconnect_delays) or RECONNECT_DELAYS
        self.watch_batch_s = watch_batch_s
        self.output_batch_s = output_batch_s
        self.client: MasterClient | None = None
        self.feed = Feed(max_lines=max_lines)
        self.history = PromptHistory(history_path)
        self.connection = Connection(target=target or "the master")
        self.fatal_error: SlothError | None = None
        """Why the console gave up (unusable credentials); ``main`` reports it as the CLI would."""
        self.fleet_signal: Signal[FleetChanges | None] = Signal(self, "fleet")
        self.runs_signal: Signal[RunsChanged] = Signal(self, "runs")
        self.tick_signal: Signal[float] = Signal(self, "tick")
        self.connection_signal: Signal[Connection] = Signal(self, "connection")
        self.history_signal: Signal[HistoryLoaded] = Signal(self, "history")
        self.health_signal: Signal[pb.StoreHealth] = Signal(self, "health")
        self.fleet_screen = FleetScreen()
        self._inbox_ready = asyncio.Event()
        self._asking_to_quit = False

    def subscribe(self, signal: Signal[T], node: DOMNode, callback: Callable[[T], object]) -> None:
        """Have ``callback`` called at once whenever ``signal`` is published, while ``node`` lives.

        Textual's signals log a subscriber's exception and carry on; here it
        is raised on the app like any handler's, so a bug cannot hide (in tests either).
        """

        def guarded(data: T) -> None:
            try:
                callback(data)
            except Exception as exc:  # re-raised on the app's queue, where Textual reports it
                self.call_next(_reraise, exc)

        signal.subscribe(node, guarded, immediate=True)

    @property
    def fleet(self) -> FleetModel:
        return self.feed.fleet

    @property
    def store(self) -> RunStore:
        return self.feed.store

    # ------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen:
        return self.fleet_screen

    def on_ready(self) -> None:
        # The main screen is up: start listening to the master.
        self._freeze_long_lived()
        self.run_worker(self._apply_loop(), group="apply")
        self._watch_master()
        self.set_interval(1.0, self._tick)

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        if self.client is not None:
            await self.client.close()

    def now(self) -> float:
        return self.clock()

    def _freeze_long_lived(self) -> None:
        """Keep what lives for the session out of the garbage collector's full passes.

        The screen, Textual's styles and the fleet stay for the whole session;
        a full collection walking them stalled the UI for 20-60 ms at a time.
        Only done while no dialog is open, so nothing short-lived is kept.
        """
        if len(self.screen_stack) == 1:
            gc.freeze()

    def _tick(self) -> None:
        self.tick_signal.publish(self.now())

    # ------------------------------------------------------------ the Watch feed

    def _watch_master(self) -> None:
        self.run_worker(self._watch_loop(), group="watch", exclusive=True, exit_on_error=False)

    async def _watch_loop(self) -> None:
        """Keep one Watch stream open, reconnecting with backoff, until the credentials prove unusable."""
        failures = 0
        connected_once = False
        while True:
            error, got_snapshot = await self._watch_once()
            connected_once = connected_once or got_snapshot
            if unusable_credentials(error, connected_once=connected_once):
                self.fatal_error = error
                self.exit(return_code=error.exit_code)
                return
            failures = 1 if got_snapshot else failures + 1
            delay = self.reconnect_delays[min(failures, len(self.reconnect_delays)) - 1]
            self.post_message(
                ConnectionChanged("disconnected", str(error), retry_in=delay, attempt=failures)
            )
            await asyncio.sleep(delay)

    async def _watch_once(self) -> tuple[SlothError, bool]:
        """Read the feed until it breaks; return why, and whether it got going."""
        if self.client is None:
            try:
                self.client = self._client_factory()
            except SlothError as exc:
                return exc, False
        batch: Coalescer[pb.WatchEvent] = Coalescer(
            lambda events: self.post_message(WatchBatch(events)), self.watch_batch_s
        )
        got_snapshot = False
        try:
            async for event in self.client.watch(include_output=False):
                if event.HasField("snapshot"):
                    batch.add(event, urgent=True)
                    got_snapshot = True
                    self._show_master_in_use()
                    self.post_message(ConnectionChanged("connected"))
                else:
                    batch.add(event)
        except SlothError as exc:
            if got_snapshot and not isinstance(exc, errors.PermissionDeniedError):
                # It was working: the link broke (the master stopped, the
                # network went away). grpc reports that as UNAVAILABLE "Socket
                # closed", which can read like a refused certificate; it is not.
                return errors.MasterUnreachableError("lost the connection to the master"), True
            return exc, got_snapshot
        finally:
            batch.flush()
        return errors.MasterUnreachableError("the master closed the event feed"), got_snapshot

    def _show_master_in_use(self) -> None:
        """Several masters: the status bar names the one the console reached (it may have failed over)."""
        addresses = getattr(self.client, "addresses", [])
        if len(addresses) > 1 and self.client is not None:
            suffix = " (insecure)" if self.connection.target.endswith(" (insecure)") else ""
            self.connection.target = f"{self.client.label()}{suffix}"

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        conn = self.connection
        was = conn.state
        if message.state == CONNECTED:
            conn.connected()
        else:
            now = time.monotonic()
            conn.failed(message.detail, attempt=message.attempt, retry_at=now + (message.retry_in or 0), now=now)
        self.connection_signal.publish(conn)
        if message.state == CONNECTED and was != CONNECTED:
            self._reattach_detached()

    # ------------------------------------------------------------ applying events
    #
    # Worker messages only queue their events in the feed; one task applies
    # them in slices of a few milliseconds and yields to the event loop in
    # between, so a burst never freezes keys or frames.

    def on_watch_batch(self, message: WatchBatch) -> None:
        self.feed.push_watch(message.events)
        self._inbox_ready.set()

    def on_run_batch(self, message: RunBatch) -> None:
        self.feed.push_run(message.stream_id, message.events)
        self._inbox_ready.set()

    def on_run_stream_ended(self, message: RunStreamEnded) -> None:
        self.feed.push_ended(message.stream_id, message.error)
        self._inbox_ready.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self.feed.pending:
                self._publish(self.feed.apply())
                await asyncio.sleep(0)

    def _publish(self, changes: Changes) -> None:
        if changes.snapshot:
            self.call_after_refresh(self._freeze_long_lived)
        if changes.fleet:
            self.fleet_signal.publish(changes.fleet)
        if changes.runs:
            self.runs_signal.publish(changes.runs)
        if changes.health:
            self.health_signal.publish(self.feed.history_health)
        for error in changes.failed_jobs:
            self.notify(error, title="The command did not start", severity="error", markup=False)

    # ------------------------------------------------------------ runs

    def _client(self) -> MasterClient:
        if self.client is None:
            raise SlothError(f"not connected to {self.connection.target} yet")
        return self.client

    def start_job(self, command: str, names: list[str], options: RunOptions | None = None) -> None:
        """Run ``command`` on ``names`` (with --env/--cwd/--stdin ``options``); events arrive as :class:`RunBatch`.

        A --stdin file is checked here (missing, a directory: said at once, nothing runs) and read as it is sent.
        """
        options = options or RunOptions()
        open_stream: Callable[[MasterClient], AsyncIterator[pb.RunEvent]]
        if options.stdin:
            from sloth_core.proto import sloth_pb2 as pb
            from sloth_tui.stdin_file import checked_path, run_with_file

            try:
                path = checked_path(options.stdin)
            except SlothError as exc:
                self.notify(str(exc), title="The command did not start", severity="error", markup=False)
                return
            request = pb.RunRequest(
                target=pb.Target(names=names), command=command, env=options.env, cwd=options.cwd, stdin=True
            )
            open_stream = lambda client: run_with_file(client, request, path)  # noqa: E731
        else:
            open_stream = lambda client: client.run(  # noqa: E731
                names=names, command=command, env=options.env, cwd=options.cwd
            )
        stream_id = self.feed.open_job(command, options)
        self.run_worker(self._pump(stream_id, open_stream), group="jobs", exit_on_error=False)

    def open_shell(self, agent: str, command: str = "") -> None:
        """Hand the terminal to `agent shell` on ``agent`` (blocking: the console is suspended meanwhile).

        Textual's own pattern for running a terminal program: the app's loop
        waits, so nothing draws over the session; the streams catch up (or
        reconnect) when the console is back on the screen it left.
        """
        from textual.app import SuspendNotSupported

        if self.shell is None:
            self.notify("This console cannot start `sloth-runner agent shell`.", title="Shell",
                        severity="error", markup=False)
            return
        try:
            with self.suspend():
                result = self.shell.run(agent, command)
        except SuspendNotSupported:
            self.notify("This terminal cannot be handed over to a shell.", title="Shell", severity="error",
                        markup=False)
            return
        self._shell_ended(agent, result)

    def _shell_ended(self, agent: str, result: ShellResult) -> None:
        from sloth_core.escape import shown

        said = shown(result.stderr.strip())
        if said:
            self.notify(said, title=f"Shell on {agent}", severity="error" if result.exit_code else "warning",
                        markup=False)
        elif result.exit_code:
            self.notify(f"The session ended with exit {result.exit_code}.", title=f"Shell on {agent}", markup=False)
        else:
            self.notify("The session ended.", title=f"Shell on {agent}", markup=False)

    async def _pump(self, stream_id: str, open_stream: Callable[[MasterClient], AsyncIterator[pb.RunEvent]]) -> None:
        """Read a Run or StreamRun stream into :class:`RunBatch` messages, then say how it ended."""
        batch: Coalescer[pb.RunEvent] = Coalescer(
            lambda events: self.post_message(RunBatch(stream_id, events)), self.output_batch_s
        )
        error = None
        try:
            async for event in open_stream(self._client()):
                batch.add(event, urgent=event.HasField("job"))
        except SlothError as exc:
            error = str(exc)
        finally:
            batch.flush()
            self.post_message(RunStreamEnded(stream_id, error))

    def attach_run(self, info: pb.RunInfo, *, follow: bool) -> RunView:
        """Stream a run's output from the master: a replay, or a live follow."""
        stream_id, run = self.feed.open_replay(info)
        self.run_worker(
            self._pump(stream_id, lambda client: client.stream_run(info.run_id, follow=follow)),
            group=f"replay:{info.run_id}",
            exclusive=True,
            exit_on_error=False,
        )
        self.runs_signal.publish(RunsChanged(runs={run.run_id}))
        return run

    def open_latest(self, agent: str) -> None:
        """Show the run in flight on ``agent`` (following it), else its last one."""
        active = self.fleet.active_run_of(agent)
        if active is not None:
            self.attach_run(active, follow=True)
            return
        self.run_worker(self._open_latest(agent), group=f"open:{agent}", exclusive=True, exit_on_error=False)

    async def _open_latest(self, agent: str) -> None:
        from sloth_core.status_words import RUN_ACTIVE

        try:
            runs = await self._client().list_runs(agent=agent, limit=1)
        except SlothError as exc:
            self.notify(str(exc), title="Could not load the last run", severity="error", markup=False)
            return
        if not runs:
            self.notify(f"{agent} has no runs yet.", title="Nothing to show", markup=False)
            return
        self.attach_run(runs[0], follow=runs[0].status in RUN_ACTIVE)

    def _reattach_detached(self) -> None:
        """After a reconnect, pick up the runs whose streams broke, from the start."""
        for run in self.feed.detached_runs():
            self.attach_run(run.info, follow=True)

    # ------------------------------------------------------------ one-shot calls

    def load_history(self, agent: str, limit: int = 100) -> None:
        self.run_worker(
            self._load_history(agent, limit), group=f"history:{agent}", exclusive=True,
            exit_on_error=False,
        )

    async def _load_history(self, agent: str, limit: int) -> None:
        try:
            runs = await self._client().list_runs(agent=agent, limit=limit)
        except SlothError as exc:
            self.post_message(HistoryLoaded(agent, [], error=str(exc)))
            return
        self.post_message(HistoryLoaded(agent, runs))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self.history_signal.publish(message)

    def cancel(self, run_or_job_id: str, what: str) -> None:
        self.run_worker(self._cancel(run_or_job_id, what), group="rpc", exit_on_error=False)

    async def _cancel(self, run_or_job_id: str, what: str) -> None:
        try:
            cancelled = await self._client().cancel(run_or_job_id)
        except SlothError as exc:
            self.notify(str(exc), title=f"Could not cancel {what}", severity="error", markup=False)
            return
        if cancelled:
            self.notify(f"Cancelled {len(cancelled)} run(s) of {what}.", title="Cancelled", markup=False)
        else:
            self.notify(f"Nothing of {what} was still running.", title="Cancel", markup=False)

    def agent_call(self, verb: str, name: str) -> None:
        """``stop`` or ``delete`` agent ``name``."""
        self.run_worker(self._agent_call(verb, name), group="rpc", exit_on_error=False)

    async def _agent_call(self, verb: str, name: str) -> None:
        client = self._client()
        try:
            if verb == "stop":
                await client.stop_agent(name)
            else:
                await client.delete_agent(name)
        except SlothError as exc:
            self.notify(str(exc), title=f"Could not {verb} {name}", severity="error", markup=False)
            return
        self.notify(f"{name}: {'stop requested' if verb == 'stop' else 'deleted'}.", title=f"Agent {verb}", markup=False)

    # ------------------------------------------------------------ app actions

    def confirm(
        self,
        title: str,
        body: Text | str,
        on_yes: Callable[[], object],
        *,
        yes: str = "Yes",
        danger: bool = False,
    ) -> None:
        """Ask first; run ``on_yes`` only if the operator agrees."""

        def done(agreed: bool | None) -> None:
            if agreed:
                on_yes()

        self.push_screen(ConfirmScreen(title, body, yes=yes, danger=danger), done)

    async def action_interrupt(self) -> None:
        """Ctrl-C: quit, asking first like ``q`` while runs started here are in flight."""
        await self.action_quit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While typing, q and ? are letters: the footer must not offer them.
        if action in ("quit", "help") and isinstance(self.focused, Input):
            return False
        return True

    async def action_quit(self) -> None:
        if self._asking_to_quit:
            return  # the question is on screen already (q, then Ctrl-C)
        in_flight = self.store.in_flight_here()
        if not in_flight:
            self.exit(0)
            return

        def answered(agreed: bool | None) -> None:
            self._asking_to_quit = False
            if agreed:
                self.exit(0)

        self._asking_to_quit = True
        self.push_screen(
            ConfirmScreen(
                "Quit?",
                f"{fmt.plural(len(in_flight), 'run')} started here still running. "
                "Quitting closes their streams and the master cancels them.",
                yes="Quit and cancel",
                danger=True,
            ),
            answered,
        )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        contexts = getattr(self.screen, "active_contexts", lambda: [])()
        self.push_screen(HelpScreen([*contexts, "app"]))

    async def run_keyspec(self, spec: keymap.KeySpec, screen: Screen) -> None:
        """Run a keymap action as if its key were pressed in its context (the palette)."""
        node: App[int] | Screen | Widget
        if spec.target == "app":
            node = self
        elif spec.target == "screen":
            node = screen
        else:
            node = screen.query_one(spec.target)
        action = spec.action
        if action.startswith("screen."):
            # Textual would resolve "screen." to the screen on top: the palette's own.
            node, action = screen, action.removeprefix("screen.")
        await self.run_action(action, default_namespace=node)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Our own quit asks first when runs are in flight; drop Textual's.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command


def _reraise(exc: Exception) -> None:
    raise exc


def create_app(
    client_factory: ClientFactory,
    *,
    clock: Callable[[], float] = time.time,
    history_path: Path | None = None,
    confirm_over: int = DEFAULT_CONFIRM_OVER,
    max_lines: int = DEFAULT_MAX_LINES,
    reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
    target: str = "",
    watch_batch_s: float = WATCH_BATCH_S,
    output_batch_s: float = OUTPUT_BATCH_S,
    shell: ShellLauncher | None = None,
) -> SlothApp:
    """Build the console around a client factory (tests inject one, and a clock).

    Every option of :class:`SlothApp` is accepted and passed on (a test holds
    the two signatures together). ``history_path=None`` keeps prompt history
    in memory only.
    """
    return SlothApp(
        client_factory,
        clock=clock,
        history_path=history_path,
        confirm_over=confirm_over,
        max_lines=max_lines,
        reconnect_delays=reconnect_delays,
        target=target,
        watch_batch_s=watch_batch_s,
        output_batch_s=output_batch_s,
        shell=shell,
    )


def unusable_credentials(error: SlothError, *, connected_once: bool) -> bool:
    """Whether retrying cannot help, so the console should exit as the CLI would.

    A refusal the master labelled (revoked, not an admin) is final at any
    time. Missing or refused credentials are final before the first
    connection; after one, a closed handshake is more likely a master
    restarting than our certificate going bad, so the console keeps trying.
    """
    if isinstance(error, errors.PermissionDeniedError):
        return True
    return isinstance(error, (errors.CredentialsError, errors.UsageError)) and not connected_once


def tune_gc() -> None:
    """Collect young garbage less often: Python's default (every 700 allocations) makes
    full collections frequent in a UI that allocates strips every frame, and each
    full pass over a large fleet stalls the screen."""
    gc.set_threshold(10_000, 20, 10)


def _confirm_over_from_env() -> int:
    value = os.environ.get(CONFIRM_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_CONFIRM_OVER


def main(master: str | None, credentials: str | None, insecure: bool, master_data_dir: str | None = None) -> int:
    """``sloth-runner tui``: open the console on ``master`` (same discovery as the CLI)."""
    # grpc writes its own log lines to stderr, over the screen, unless told
    # otherwise before it is first imported.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from sloth_core import paths
    from sloth_core.client import MasterClient
    from sloth_core.names import resolve_master_address

    address = resolve_master_address(master, master_data_dir)  # a SlothError is reported by the CLI

    def connect() -> MasterClient:
        return MasterClient.connect(
            address, credentials=credentials, insecure=insecure, master_data_dir=master_data_dir
        )

    tune_gc()
    app = create_app(
        connect,
        history_path=paths.console_data_dir() / "history",
        confirm_over=_confirm_over_from_env(),
        target=address + ("" if not insecure else " (insecure)"),
        shell=ShellLauncher(address, credentials, insecure, master_data_dir),
    )
    app.run()
    if app.fatal_error is not None:
        raise app.fatal_error  # one line on stderr and the CLI's exit code, as `agent list` would
    return app.return_code or 0
