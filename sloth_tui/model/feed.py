"""The master's streams folded into the console's state: no Textual, no gRPC calls.

The app's workers read the streams and queue what arrives here
(:meth:`Feed.push_watch`, :meth:`Feed.push_run`, :meth:`Feed.push_ended`);
:meth:`Feed.apply` then folds a slice of the queue into the fleet and the run
store and returns what changed, so the screens redraw just that. The queue
lets the app apply a burst (a 1,000-agent snapshot, 100,000 lines at once)
over several frames instead of freezing the screen for one long one.

Streams are named by an id the app chooses: a ``Run`` the console started (a
job) or a ``StreamRun`` it opened (a replay, or following a run started
elsewhere). A replay superseded by a newer one of the same run is ignored.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.model.fleet import Agent, FleetChanges, FleetModel
from sloth_tui.model.run_options import RunOptions
from sloth_tui.model.runs import DEFAULT_MAX_LINES, RunsChanged, RunStore, RunView

SLICE_S = 0.005
"""Events are applied in slices of about this long, with the loop free in between."""
AGENT_EVENTS_PER_SLICE = 100
"""Agent updates per slice (each costs table cells to redraw)."""


@dataclass
class Stream:
    """A Run or StreamRun stream this console reads."""

    kind: str  # "job" or "replay"
    command: str = ""
    options: RunOptions | None = None
    run_id: str = ""
    job_id: str = ""


@dataclass
class Changes:
    """What one slice of events changed, for the screens to redraw just that."""

    fleet: FleetChanges = field(default_factory=FleetChanges)
    runs: RunsChanged = field(default_factory=RunsChanged)
    snapshot: bool = False
    """A Watch snapshot was applied (the whole fleet was replaced)."""
    health: bool = False
    """The master's word on its run history (``Feed.history_health``) changed."""
    failed_jobs: list[str] = field(default_factory=list)
    """Why commands started here never got going (one line each)."""


class Feed:
    """The console's fleet and runs, and the streams that keep them current."""

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES) -> None:
        self.fleet = FleetModel()
        self.store = RunStore(max_lines=max_lines)
        self.streams: dict[str, Stream] = {}
        self._current_replay: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._inbox: deque[tuple[str, object, object]] = deque()
        self.history_health = pb.StoreHealth()
        """Whether the master is saving run history; ``warning`` is set while it is not."""

    # ------------------------------------------------------------ streams

    def open_job(self, command: str, options: RunOptions | None = None) -> str:
        """A job is about to be started here: the id its events arrive under."""
        stream_id = f"job-{next(self._ids)}"
        self.streams[stream_id] = Stream("job", command=command, options=options)
        return stream_id

    def open_replay(self, info: pb.RunInfo) -> tuple[str, RunView]:
        """Output of ``info``'s run is about to be streamed again, from the start."""
        run = self.store.upsert(info)
        run.reset_output()
        run.detached = False
        if info.kind == pb.RUN_SHELL:
            run.note("a terminal session (agent shell): what was typed and shown is not recorded")
        stream_id = f"replay-{next(self._ids)}"
        self.streams[stream_id] = Stream("replay", run_id=info.run_id, job_id=info.job_id)
        old = self._current_replay.get(info.run_id)
        if old is not None:
            self.streams.pop(old, None)
        self._current_replay[info.run_id] = stream_id
        return stream_id, run

    def detached_runs(self) -> list[RunView]:
        """Runs still in flight whose stream broke: to pick up again after a reconnect."""
        return [run for run in self.store.runs.values() if run.detached and run.active]

    # ------------------------------------------------------------ the queue

    def push_watch(self, events: Iterable[pb.WatchEvent]) -> None:
        self._inbox.extend(("watch", event, None) for event in events)

    def push_run(self, stream_id: str, events: Iterable[pb.RunEvent]) -> None:
        self._inbox.extend(("run", stream_id, event) for event in events)

    def push_ended(self, stream_id: str, error: str | None) -> None:
        self._inbox.append(("ended", stream_id, error))

    @property
    def pending(self) -> int:
        """Events queued and not applied yet."""
        return len(self._inbox)

    def apply(
        self,
        *,
        budget_s: float = SLICE_S,
        max_agent_events: int = AGENT_EVENTS_PER_SLICE,
        clock: Callable[[], float] = time.perf_counter,
    ) -> Changes:
        """Apply queued events for about ``budget_s`` (or ``max_agent_events`` agents)."""
        deadline = clock() + budget_s
        changes = Changes()
        inbox = self._inbox
        agent_events = 0
        while inbox and agent_events < max_agent_events and clock() < deadline:
            kind, first, second = inbox.popleft()
            if kind == "watch":
                agent_events += self._apply_watch(first, changes)  # type: ignore[arg-type]
            elif kind == "run":
                self._apply_run(first, second, changes.runs)  # type: ignore[arg-type]
            else:
                self._stream_ended(first, second, changes)  # type: ignore[arg-type]
        return changes

    # ------------------------------------------------------------ the Watch feed

    def _apply_watch(self, event: pb.WatchEvent, changes: Changes) -> int:
        fleet = self.fleet
        merge = changes.fleet.merge
        kind = event.WhichOneof("kind")
        if kind == "snapshot":
            snapshot = event.snapshot
            merge(fleet.replace_all(Agent.from_pb(a) for a in snapshot.agents))
            merge(fleet.set_active_runs(snapshot.active_runs))
            changes.snapshot = True
            self._set_health(snapshot.store, changes)
            return len(snapshot.agents)
        if kind == "agent":
            info = event.agent.agent
            if event.agent.type == pb.AGENT_DELETED:
                merge(fleet.remove(info.name))
            else:
                merge(fleet.upsert(Agent.from_pb(info)))
            return 1
        if kind == "run":
            self._apply_watched_run(event.run, changes)
        elif kind == "heartbeats":
            merge(fleet.heartbeats(event.heartbeats.names, event.heartbeats.at, event.heartbeats.facts))
        elif kind == "store":
            self._set_health(event.store, changes)
        return 0

    def _set_health(self, health: pb.StoreHealth, changes: Changes) -> None:
        if health != self.history_health:
            self.history_health = pb.StoreHealth()
            self.history_health.CopyFrom(health)
            changes.health = True

    def _apply_watched_run(self, event: pb.RunEvent, changes: Changes) -> None:
        kind = event.WhichOneof("kind")
        if kind == "started":
            info = event.started
            if not info.agent:
                info.agent = event.agent
            changes.fleet.merge(self.fleet.run_started(info))
        elif kind == "finished":
            run_id = event.finished.run_id or event.run_id
            changes.fleet.merge(self.fleet.run_finished(run_id))
            run = self.store.runs.get(run_id)
            if run is not None and run.active:
                # Our stream of it may be gone (master restart): take the news here.
                run.update(event.finished)
                changes.runs.runs.add(run.run_id)

    # ------------------------------------------------------------ Run / StreamRun

    def _apply_run(self, stream_id: str, event: pb.RunEvent, changed: RunsChanged) -> None:
        stream = self.streams.get(stream_id)
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
            job = store.start_job(event.job_id, stream.command, event.job.runs, stream.options)
            job.warning = event.job.warning
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

    def _stream_ended(self, stream_id: str, error: str | None, changes: Changes) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.kind == "job":
            job = self.store.jobs.get(stream.job_id)
            if job is None:
                if error:
                    changes.failed_jobs.append(error)
                return
            job.stream_open = False
            runs = list(self.store.job_runs(job.job_id))
        else:
            if self._current_replay.get(stream.run_id) == stream_id:
                del self._current_replay[stream.run_id]
            run = self.store.runs.get(stream.run_id)
            runs = [run] if run is not None else []
        if error:
            lines = changes.runs.lines
            for run in runs:
                if run.active and not run.detached:
                    run.detached = True
                    run.note(f"— lost the stream: {error} —")
                    lines[run.run_id] = lines.get(run.run_id, 0) + 1
