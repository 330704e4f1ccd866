"""The operator console: the App, its workers, and the entry points.

The app owns the only link to the master (a :class:`MasterClient` made by
the injected factory) and the workers that read its streams. Workers post
plain messages (:mod:`sloth_tui.messages`); the app folds them into the
models (:mod:`sloth_tui.model`) and tells the screens what changed. Widgets
never touch gRPC.

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
import itertools
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App, SystemCommand
from textual.screen import Screen

from sloth_core.errors import SlothError
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui import keymap
from sloth_tui.batching import Coalescer
from sloth_tui.commands import SlothCommands
from sloth_tui.messages import ConnectionChanged, HistoryLoaded, RunBatch, RunStreamEnded, WatchBatch
from sloth_tui.model.fleet import Agent, FleetChanges, FleetModel
from sloth_tui.model.prompt_history import PromptHistory
from sloth_tui.model.runs import DEFAULT_MAX_LINES, RunsChanged, RunStore, RunView
from sloth_tui.screens.confirm import ConfirmScreen
from sloth_tui.screens.fleet import FleetScreen
from sloth_tui.screens.help import HelpScreen
from sloth_tui.widgets.output_log import OutputLog
from sloth_tui.widgets.status_bar import Connection

if TYPE_CHECKING:
    from sloth_core.client import MasterClient

ClientFactory = Callable[[], "MasterClient"]

DEFAULT_CONFIRM_OVER = 5
CONFIRM_ENV = "SLOTH_RUNNER_CONFIRM_OVER"
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)
SLICE_S = 0.005
"""Events are applied in slices of about this long, with the loop free in between."""
AGENT_EVENTS_PER_SLICE = 100
"""Agent updates per slice (each costs table cells to redraw)."""


@dataclass
class _Stream:
    """A Run or StreamRun stream this console reads."""

    kind: str  # "job" or "replay"
    command: str = ""
    run_id: str = ""
    job_id: str = ""


class SlothApp(App[int]):
    """The sloth-runner operator console."""

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
        watch_batch_s: float = 0.1,
        output_batch_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._client_factory = client_factory
        self.clock = clock
        self.confirm_over = confirm_over
        self.reconnect_delays = tuple(reconnect_delays) or RECONNECT_DELAYS
        self.watch_batch_s = watch_batch_s
        self.output_batch_s = output_batch_s
        self.client: MasterClient | None = None
        self.fleet = FleetModel()
        self.store = RunStore(max_lines=max_lines)
        self.history = PromptHistory(history_path)
        self.connection = Connection(target=target or "the master")
        self.fleet_screen = FleetScreen()
        self._streams: dict[str, _Stream] = {}
        self._current_replay: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._inbox: deque[tuple[str, Any, Any]] = deque()
        self._inbox_ready = asyncio.Event()

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
        for screen in self.screen_stack:
            tick = getattr(screen, "tick", None)
            if tick is not None:
                tick(self.now())

    # ------------------------------------------------------------ the Watch feed

    def _watch_master(self) -> None:
        self.run_worker(self._watch_loop(), group="watch", exclusive=True, exit_on_error=False)

    async def _watch_loop(self) -> None:
        """Keep one Watch stream open, reconnecting with backoff; never gives up."""
        failures = 0
        while True:
            error, got_snapshot = await self._watch_once()
            failures = 1 if got_snapshot else failures + 1
            delay = self.reconnect_delays[min(failures, len(self.reconnect_delays)) - 1]
            self.post_message(
                ConnectionChanged("disconnected", error, retry_in=delay, attempt=failures)
            )
            await asyncio.sleep(delay)

    async def _watch_once(self) -> tuple[str, bool]:
        """Read the feed until it breaks; return why, and whether it got going."""
        if self.client is None:
            try:
                self.client = self._client_factory()
            except SlothError as exc:
                return str(exc), False
        batch: Coalescer[pb.WatchEvent] = Coalescer(
            lambda events: self.post_message(WatchBatch(events)), self.watch_batch_s
        )
        got_snapshot = False
        try:
            async for event in self.client.watch(include_output=False):
                if event.HasField("snapshot"):
                    batch.add(event, urgent=True)
                    got_snapshot = True
                    self.post_message(ConnectionChanged("connected"))
                else:
                    batch.add(event)
        except SlothError as exc:
            if got_snapshot:
                # It was working: the link broke (the master stopped, the
                # network went away). grpc reports that as UNAVAILABLE "Socket
                # closed", which can read like a refused certificate; it is not.
                return "lost the connection to the master", True
            return str(exc), False
        finally:
            batch.flush()
        return "the master closed the event feed", got_snapshot

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        was = self.connection.state
        self.connection.state = message.state
        self.connection.detail = message.detail
        self.connection.retry_in = message.retry_in
        self.connection.attempt = message.attempt
        self.fleet_screen.connection_changed(self.connection)
        if message.state == "connected" and was != "connected":
            self._reattach_detached()

    # ------------------------------------------------------------ applying events
    #
    # Worker messages only queue their events; one task applies them to the
    # models in slices of a few milliseconds and yields to the event loop in
    # between, so a burst (a 1,000-agent snapshot, 100,000 lines arriving at
    # once) never freezes keys or frames: it is drawn over a few frames.

    def on_watch_batch(self, message: WatchBatch) -> None:
        self._inbox.extend(("watch", event, None) for event in message.events)
        self._inbox_ready.set()

    def on_run_batch(self, message: RunBatch) -> None:
        self._inbox.extend(("run", message.stream_id, event) for event in message.events)
        self._inbox_ready.set()

    def on_run_stream_ended(self, message: RunStreamEnded) -> None:
        self._inbox.append(("ended", message.stream_id, message.error))
        self._inbox_ready.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox:
                self._apply_slice()
                await asyncio.sleep(0)

    def _apply_slice(self) -> None:
        """Apply queued events for about ``SLICE_S``, then redraw what they changed."""
        deadline = time.perf_counter() + SLICE_S
        fleet_changes = FleetChanges()
        runs = RunsChanged()
        inbox = self._inbox
        agent_events = 0
        while inbox and agent_events < AGENT_EVENTS_PER_SLICE and time.perf_counter() < deadline:
            kind, first, second = inbox.popleft()
            if kind == "watch":
                agent_events += self._apply_watch_event(first, fleet_changes, runs)
            elif kind == "run":
                self._apply_run_event(first, second, runs)
            else:
                self._stream_ended(first, second, runs)
        if fleet_changes:
            self.fleet_screen.fleet_changed(fleet_changes)
        if runs:
            self._runs_changed(runs)

    def _apply_watch_event(self, event: pb.WatchEvent, changes: FleetChanges, runs: RunsChanged) -> int:
        fleet = self.fleet
        kind = event.WhichOneof("kind")
        if kind == "snapshot":
            snapshot = event.snapshot
            changes.merge(fleet.replace_all(Agent.from_pb(a) for a in snapshot.agents))
            changes.merge(fleet.set_active_runs(snapshot.active_runs))
            self.call_after_refresh(self._freeze_long_lived)
            return len(snapshot.agents)
        if kind == "agent":
            info = event.agent.agent
            if event.agent.type == pb.AGENT_DELETED:
                changes.merge(fleet.remove(info.name))
            else:
                changes.merge(fleet.upsert(Agent.from_pb(info)))
            return 1
        if kind == "run":
            self._apply_watched_run(event.run, changes, runs)
        elif kind == "heartbeats":
            changes.merge(fleet.heartbeats(event.heartbeats.names, event.heartbeats.at))
        return 0

    def _apply_watched_run(self, event: pb.RunEvent, changes: FleetChanges, runs: RunsChanged) -> None:
        kind = event.WhichOneof("kind")
        if kind == "started":
            info = event.started
            if not info.agent:
                info.agent = event.agent
            changes.merge(self.fleet.run_started(info))
        elif kind == "finished":
            changes.merge(self.fleet.run_finished(event.run_id or event.finished.run_id))
            run = self.store.runs.get(event.finished.run_id or event.run_id)
            if run is not None and run.active:
                # Our stream of it may be gone (master restart): take the news here.
                run.update(event.finished)
                runs.runs.add(run.run_id)

    # ------------------------------------------------------------ runs

    def _client(self) -> MasterClient:
        if self.client is None:
            raise SlothError(f"not connected to {self.connection.target} yet")
        return self.client

    def start_job(self, command: str, names: list[str]) -> None:
        """Run ``command`` on ``names``; events arrive as :class:`RunBatch`."""
        stream_id = f"job-{next(self._ids)}"
        self._streams[stream_id] = _Stream("job", command=command)
        self.run_worker(
            self._pump(stream_id, lambda client: client.run(names=names, command=command)),
            group="jobs",
            exit_on_error=False,
        )

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
        run = self.store.upsert(info)
        run.reset_output()
        run.detached = False
        stream_id = f"replay-{next(self._ids)}"
        self._streams[stream_id] = _Stream("replay", run_id=info.run_id, job_id=info.job_id)
        old = self._current_replay.get(info.run_id)
        if old is not None:
            self._streams.pop(old, None)
        self._current_replay[info.run_id] = stream_id
        self.run_worker(
            self._pump(stream_id, lambda client: client.stream_run(info.run_id, follow=follow)),
            group=f"replay:{info.run_id}",
            exclusive=True,
            exit_on_error=False,
        )
        self._runs_changed(RunsChanged(runs={run.run_id}))
        return run

    def open_latest(self, agent: str) -> None:
        """Show the run in flight on ``agent`` (following it), else its last one."""
        active = self.fleet.active_run_of(agent)
        if active is not None:
            self.attach_run(active, follow=True)
            return
        self.run_worker(self._open_latest(agent), group=f"open:{agent}", exclusive=True, exit_on_error=False)

    async def _open_latest(self, agent: str) -> None:
        try:
            runs = await self._client().list_runs(agent=agent, limit=1)
        except SlothError as exc:
            self.notify(str(exc), title="Could not load the last run", severity="error", markup=False)
            return
        if not runs:
            self.notify(f"{agent} has no runs yet.", title="Nothing to show", markup=False)
            return
        self.attach_run(runs[0], follow=runs[0].status in (pb.RUN_PENDING, pb.RUN_RUNNING))

    def _apply_run_event(self, stream_id: str, event: pb.RunEvent, changed: RunsChanged) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:  # a replay superseded by a newer one
            return
        store = self.store
        lines = changed.lines
        kind = event.WhichOneof("kind")
        if kind == "output":
            run = store.runs.get(event.run_id or stream.run_id)
            if run is not None:
                added = run.feed(event.output.stream, event.output.data)
                lines[run.run_id] = lines.get(run.run_id, 0) + added
        elif kind == "job":
            job = store.start_job(event.job_id, stream.command, event.job.runs)
            stream.job_id = job.job_id
            changed.new_job = job.job_id
            changed.runs.update(job.run_ids)
        elif kind in ("started", "finished"):
            info = getattr(event, kind)
            if not info.run_id:
                info.run_id = event.run_id or stream.run_id
            if not info.agent:
                info.agent = event.agent
            run = store.upsert(info, show=False)
            if kind == "finished":
                lines[run.run_id] = lines.get(run.run_id, 0) + run.finish_output()
            changed.runs.add(run.run_id)
        elif kind == "dropped":
            run = store.runs.get(event.run_id or stream.run_id)
            if run is not None:
                run.note(f"… {event.dropped:,} bytes of output were not kept in history …")
                lines[run.run_id] = lines.get(run.run_id, 0) + 1

    def _stream_ended(self, stream_id: str, error: str | None, changed: RunsChanged) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.kind == "job":
            job = self.store.jobs.get(stream.job_id)
            if job is None:
                if error:
                    self.notify(error, title="The command did not start", severity="error", markup=False)
                return
            job.stream_open = False
            runs = list(self.store.job_runs(job.job_id))
        else:
            if self._current_replay.get(stream.run_id) == stream_id:
                del self._current_replay[stream.run_id]
            run = self.store.runs.get(stream.run_id)
            runs = [run] if run is not None else []
        if error:
            for run in runs:
                if run.active and not run.detached:
                    run.detached = True
                    run.note(f"— lost the stream: {error} —")
                    changed.lines[run.run_id] = changed.lines.get(run.run_id, 0) + 1

    def _reattach_detached(self) -> None:
        """After a reconnect, pick up the runs whose streams broke, from the start."""
        for run in list(self.store.runs.values()):
            if run.detached and run.active:
                self.attach_run(run.info, follow=True)

    def _runs_changed(self, changed: RunsChanged) -> None:
        for screen in self.screen_stack:
            runs_changed = getattr(screen, "runs_changed", None)
            if runs_changed is not None:
                runs_changed(changed)

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
        for screen in self.screen_stack:
            handler = getattr(screen, "history_loaded", None)
            if handler is not None:
                handler(message)

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

    async def action_quit(self) -> None:
        in_flight = self.store.in_flight_here()
        if not in_flight:
            self.exit(0)
            return
        self.confirm(
            "Quit?",
            f"{len(in_flight)} run(s) started here are still running. "
            "Quitting closes their streams and the master cancels them.",
            lambda: self.exit(0),
            yes="Quit and cancel",
            danger=True,
        )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        contexts = getattr(self.screen, "active_contexts", lambda: [])()
        self.push_screen(HelpScreen([*contexts, "app"]))

    async def run_keyspec(self, spec: keymap.KeySpec, screen: Screen) -> None:
        """Run a keymap action as if its key were pressed in its context (the palette)."""
        action = spec.action
        if action.startswith("screen."):
            target: object = screen
            action = action.removeprefix("screen.")
        elif spec.context == "app":
            target = self
        elif spec.context == "pane":
            target = screen.query_one(OutputLog)
        else:
            target = screen
        await self.run_action(action, default_namespace=target)  # type: ignore[arg-type]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Our own quit asks first when runs are in flight; drop Textual's.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command


def create_app(
    client_factory: ClientFactory,
    *,
    clock: Callable[[], float] = time.time,
    history_path: Path | None = None,
    confirm_over: int = DEFAULT_CONFIRM_OVER,
    max_lines: int = DEFAULT_MAX_LINES,
    reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
    target: str = "",
) -> SlothApp:
    """Build the console around a client factory (tests inject one, and a clock).

    ``history_path=None`` keeps prompt history in memory only.
    """
    return SlothApp(
        client_factory,
        clock=clock,
        history_path=history_path,
        confirm_over=confirm_over,
        max_lines=max_lines,
        reconnect_delays=reconnect_delays,
        target=target,
    )


def tune_gc() -> None:
    """Collect young garbage less often: Python's default (every 700 allocations) makes
    full collections frequent in a UI that allocates strips every frame, and each
    full pass over a large fleet stalls the screen."""
    gc.set_threshold(10_000, 20, 10)


def _confirm_over_from_env() -> int:
    value = os.environ.get(CONFIRM_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_CONFIRM_OVER


def main(master: str | None, credentials: str | None, insecure: bool) -> int:
    """``sloth-runner tui``: open the console on ``master`` (same discovery as the CLI)."""
    # grpc writes its own log lines to stderr, over the screen, unless told
    # otherwise before it is first imported.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from sloth_core import paths
    from sloth_core.client import MasterClient
    from sloth_core.names import resolve_master_address

    try:
        address = resolve_master_address(master)
    except SlothError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    def connect() -> MasterClient:
        return MasterClient.connect(address, credentials=credentials, insecure=insecure)

    tune_gc()
    app = create_app(
        connect,
        history_path=paths.console_data_dir() / "history",
        confirm_over=_confirm_over_from_env(),
        target=address + ("" if not insecure else " (insecure)"),
    )
    app.run()
    return app.return_code or 0
