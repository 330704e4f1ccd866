"""Runs and jobs as the console holds them: status and a capped line buffer.

Output arrives as bytes chunks tagged stdout/stderr. :class:`RunView` decodes
them at the edge (UTF-8, ``errors="replace"``, incrementally so a character
split across chunks survives), strips terminal control sequences (a command
must not be able to repaint the operator's screen), splits lines and keeps at
most ``max_lines`` of them. Widgets render straight from this buffer, so
switching panes costs nothing and no line is stored twice.
"""

from __future__ import annotations

import codecs
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rich.cells import cell_len

from sloth_core.escape import clean_output
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import RUN_ACTIVE, RUN_FAILED, run_word, what_ran
from sloth_tui.model.run_options import RunOptions

STDOUT, STDERR, NOTICE = 0, 1, 2
"""Line kinds: what the command wrote on each stream, and the console's own notes."""

DEFAULT_MAX_LINES = 100_000
DEFAULT_MAX_RUNS = 2_000
"""Runs kept in memory; older finished ones are dropped (the master keeps history)."""

ACTIVE = RUN_ACTIVE
FAILED = RUN_FAILED

# One escaping home (sloth_core.escape); the console strips sequences from output.
clean_text = clean_output


def end_of(info: pb.RunInfo) -> str:
    """How a finished run ended, said the same way everywhere: ``exit 3``, ``signal 15 (SIGTERM)``.

    An agent reports a run killed by a signal with the shell's exit code too
    (143 for SIGTERM); the signal is what happened, so it is what is shown.
    """
    if info.status in RUN_ACTIVE or info.status in (pb.RUN_REJECTED, pb.RUN_STATUS_UNSPECIFIED):
        return ""
    if info.signal:
        try:
            name = signal.Signals(info.signal).name
        except ValueError:
            return f"signal {info.signal}"
        return f"signal {info.signal} ({name})"
    if info.exit_code >= 0:
        return f"exit {info.exit_code}"
    return ""


def text_width(line: str) -> int:
    return len(line) if line.isascii() else cell_len(line)


class RunView:
    """One run: what the master said about it, and the lines it printed."""

    def __init__(self, info: pb.RunInfo, *, max_lines: int = DEFAULT_MAX_LINES) -> None:
        self.run_id = info.run_id
        self.job_id = info.job_id
        self.agent = info.agent
        self.command = what_ran(info.command, info.kind)  # a terminal session shows as "shell …"
        self.info = pb.RunInfo()
        self.update(info)
        self.max_lines = max_lines
        self.lines: list[str] = []
        self.kinds = bytearray()
        self.width = 0
        self.dropped_lines = 0
        """Lines pruned from the head to respect ``max_lines``."""
        self.resets = 0
        """How many times the output was forgotten to be delivered again (views recount then)."""
        self.detached = False
        """The stream carrying this run broke; its state may be stale."""
        self._open_kind: int | None = None
        self._decoders = {
            STDOUT: codecs.getincrementaldecoder("utf-8")(errors="replace"),
            STDERR: codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }

    # -------------------------------------------------------------- status

    def update(self, info: pb.RunInfo) -> None:
        """Take the master's newer view of the run (never going back to pending)."""
        if info.status == pb.RUN_PENDING and self.info.status not in (0, pb.RUN_PENDING):
            return
        self.info.CopyFrom(info)
        self.command = what_ran(info.command, info.kind) if info.command or info.kind else self.command
        self.job_id = info.job_id or self.job_id

    @property
    def status(self) -> int:
        return self.info.status

    @property
    def status_word(self) -> str:
        return run_word(self.info.status)

    @property
    def active(self) -> bool:
        return self.info.status in ACTIVE

    @property
    def failed(self) -> bool:
        return self.info.status in FAILED

    def duration(self, now: float) -> float | None:
        """Seconds it ran (so far, when still running); None before it started."""
        started = self.info.started_at
        if not started:
            return None
        end = self.info.finished_at or (now if self.active else started)
        return max(0.0, end - started)

    # -------------------------------------------------------------- output

    def __len__(self) -> int:
        return len(self.lines)

    def feed(self, stream: int, data: bytes) -> int:
        """Append a chunk of output; return how many lines were added."""
        kind = STDERR if stream == pb.STDERR else STDOUT
        text = self._decoders[kind].decode(data)
        return self._append_text(kind, text) if text else 0

    def note(self, text: str) -> None:
        """Add a line of the console's own (a gap in a replay, a lost stream)."""
        self._close_open_line()
        self._append_lines(NOTICE, [text])

    def finish_output(self) -> int:
        """Flush bytes held back by the decoders (a truncated character) at the end."""
        added = 0
        for kind, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                added += self._append_text(kind, tail)
        self._close_open_line()
        return added

    def reset_output(self) -> None:
        """Forget the output (a replay is about to deliver all of it again)."""
        self.resets += 1
        self.lines.clear()
        self.kinds.clear()
        self.width = 0
        self.dropped_lines = 0
        self._open_kind = None
        for decoder in self._decoders.values():
            decoder.reset()

    def _close_open_line(self) -> None:
        self._open_kind = None

    def _append_text(self, kind: int, text: str) -> int:
        text = clean_text(text)
        ascii_only = text.isascii()
        parts = text.split("\n")
        before = len(self.lines)
        first, rest = parts[0], parts[1:]
        if self._open_kind == kind:
            # Continue the line this stream left open.
            self.lines[-1] += first
            self.width = max(self.width, text_width(self.lines[-1]))
        else:
            self._append_lines(kind, [first], ascii_only)
        if rest:
            *complete, last = rest
            if complete:
                self._append_lines(kind, complete, ascii_only)
            if last:
                self._append_lines(kind, [last], ascii_only)
                self._open_kind = kind
            else:
                self._open_kind = None
        else:
            self._open_kind = kind
        return len(self.lines) - before

    def _append_lines(self, kind: int, new: list[str], ascii_only: bool = False) -> None:
        self.lines.extend(new)
        self.kinds.extend(bytes([kind]) * len(new))
        widest = max(map(len if ascii_only else text_width, new), default=0)
        if widest > self.width:
            self.width = widest
        overflow = len(self.lines) - self.max_lines
        # Prune in slices of a tenth of the cap, not line by line.
        if overflow > 0 and overflow >= max(1, self.max_lines // 10):
            del self.lines[:overflow]
            del self.kinds[:overflow]
            self.dropped_lines += overflow

    def text(self) -> str:
        """Everything kept, as one string (tests, copying)."""
        return "\n".join(self.lines)


@dataclass
class Job:
    """A command run on a set of agents: one run per agent, rejected ones included."""

    job_id: str
    command: str
    run_ids: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    started_here: bool = True
    stream_open: bool = True
    warning: str = ""
    """The master's word when it runs the job but may not keep its history."""
    options: RunOptions = field(default_factory=RunOptions)
    """The --env/--cwd/--stdin it was started with (a re-run uses them again)."""


@dataclass(frozen=True)
class Summary:
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    cancelled: int = 0


class RunStore:
    """Every run and job the console knows, and which run each agent's pane shows."""

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self.max_lines = max_lines
        self.max_runs = max_runs
        self.runs: dict[str, RunView] = {}
        self.jobs: dict[str, Job] = {}
        self.by_agent: dict[str, str] = {}
        """The run each agent's pane shows: its latest one here."""
        self.current_job: str | None = None

    def upsert(self, info: pb.RunInfo, *, show: bool = True) -> RunView:
        run = self.runs.get(info.run_id)
        if run is None:
            run = self.runs[info.run_id] = RunView(info, max_lines=self.max_lines)
        else:
            run.update(info)
        if show:
            self.by_agent[run.agent] = run.run_id
        return run

    def start_job(
        self, job_id: str, command: str, infos: Iterable[pb.RunInfo], options: RunOptions | None = None
    ) -> Job:
        job = self.jobs[job_id] = Job(job_id, command, options=options or RunOptions())
        for info in infos:
            run = self.upsert(info)
            job.run_ids.append(run.run_id)
            job.targets.append(run.agent)
        self.current_job = job_id
        self._evict()
        return job

    def _evict(self) -> None:
        """Forget the oldest jobs (all their runs finished, none shown) beyond ``max_runs``."""
        excess = len(self.runs) - self.max_runs
        if excess <= 0:
            return
        shown = set(self.by_agent.values())
        for job_id, job in list(self.jobs.items()):
            if excess <= 0:
                break
            runs = [self.runs[r] for r in job.run_ids if r in self.runs]
            if job_id == self.current_job or any(r.active or r.run_id in shown for r in runs):
                continue
            for run in runs:
                del self.runs[run.run_id]
            del self.jobs[job_id]
            excess -= len(runs)

    def for_agent(self, agent: str) -> RunView | None:
        run_id = self.by_agent.get(agent)
        return self.runs.get(run_id) if run_id else None

    def job_runs(self, job_id: str | None) -> Iterator[RunView]:
        job = self.jobs.get(job_id) if job_id else None
        if job is not None:
            for run_id in job.run_ids:
                yield self.runs[run_id]

    def summary(self, job_id: str | None) -> Summary:
        counts = {"running": 0, "succeeded": 0, "failed": 0, "rejected": 0, "cancelled": 0}
        for run in self.job_runs(job_id):
            if run.active or run.status == pb.RUN_STATUS_UNSPECIFIED:
                counts["running"] += 1
            elif run.status == pb.RUN_SUCCEEDED:
                counts["succeeded"] += 1
            elif run.status == pb.RUN_REJECTED:
                counts["rejected"] += 1
            elif run.status == pb.RUN_CANCELLED:
                counts["cancelled"] += 1
            else:
                counts["failed"] += 1
        return Summary(**counts)

    def in_flight_here(self) -> list[RunView]:
        """Active runs of jobs this console started and still streams."""
        return [
            run
            for job in self.jobs.values()
            if job.started_here and job.stream_open
            for run in self.job_runs(job.job_id)
            if run.active
        ]


@dataclass
class RunsChanged:
    """What one batch of run events changed, for the screens to redraw just that."""

    runs: set[str] = field(default_factory=set)
    """Runs whose status or header changed."""
    lines: dict[str, int] = field(default_factory=dict)
    """Lines added per run."""
    new_job: str | None = None
    """A job this console just started (its first event arrived)."""

    def __bool__(self) -> bool:
        return bool(self.runs or self.lines or self.new_job)
