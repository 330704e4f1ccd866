"""`sloth-runner agent run TARGETS COMMAND`: run, stream, summarise, exit like ssh.

What goes where, so that the command composes like ssh:

- one target: the remote stdout reaches stdout byte for byte, the remote
  stderr reaches stderr; nothing else is ever written to stdout;
- several targets: whole lines, each prefixed with its agent's name, on the
  stream they came from;
- the result box (one target) or the compact table (several) goes to stderr,
  on a fresh line, when stderr is a terminal or ``--summary`` asks for it;
- with several targets the last line on stderr is always
  ``N succeeded, M failed, K rejected``;
- with several targets and stderr a terminal, a live status line sits at the
  bottom of stderr while the output scrolls above it (``--progress``);
- stdin goes to the remote command as ssh sends it (see
  :mod:`sloth_core.cli.run_stdin`): one target and a stdin that is not a
  terminal, or ``--stdin``; ``-n`` sends none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from sloth_core.cli.common import connect
from sloth_core.cli.exit_codes import EXIT_INTERRUPTED, EXIT_NOT_RUN, run_exit_code
from sloth_core.cli.progress import Progress
from sloth_core.cli.render import AGENT_COLOURS, STATUS_COLOURS, box, duration, paint, print_error
from sloth_core.errors import UsageError
from sloth_core.escape import shown
from sloth_core.names import parse_env, parse_label

CANCEL_WAIT_S = 10.0
TICK_S = 0.5  # the progress line's clock moves even when nothing arrives
HUGE_LINE = 1024 * 1024


@dataclass
class RunView:
    """What the CLI knows of one run while it streams."""

    info: Any
    colour: str = "0"
    stdout: bytearray = field(default_factory=bytearray)  # kept only for --json
    stderr: bytearray = field(default_factory=bytearray)
    partial: dict[int, bytearray] = field(default_factory=lambda: {1: bytearray(), 2: bytearray()})
    first_stderr_line: str = ""


def parse_targets(args: argparse.Namespace) -> tuple[list[str], dict[str, str], str]:
    targets, command = args.targets, args.command
    if command is None:
        if args.all or args.label:
            targets, command = "", targets
        else:
            raise UsageError("missing COMMAND: sloth-runner agent run TARGETS COMMAND...")
    if not command or not command.strip():
        raise UsageError("empty command: give the command to run")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    labels = dict(parse_label(text) for text in args.label)
    if not names and not labels and not args.all:
        raise UsageError("no target: name an agent, a comma list or a glob, or use --label/--all")
    if args.all and names:
        raise UsageError("use either TARGETS or --all, not both")
    return names, labels, command


class Terminal:
    """Every byte `agent run` writes, so that it knows where the cursor is.

    It remembers the stream written last and whether that ended a line, so a
    summary starts on a fresh line; and it clears the progress line before
    anything else reaches the terminal.
    """

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self.progress: Progress | None = None
        self._last: tuple[int, int] | None = None  # (stream, last byte)

    def write(self, stream: int, data: bytes) -> None:
        if not data:
            return
        if self.progress is not None:
            self.progress.clear()
        target = self._binary(stream)
        target.write(data)
        target.flush()
        self._last = (stream, data[-1])
        if self.progress is not None:
            self.progress.draw()

    def say(self, text: str) -> None:
        """A line of our own on stderr (summaries, warnings), on a fresh line."""
        if self.progress is not None:
            self.progress.clear()
        self.fresh_line()
        self.err.write(text if text.endswith("\n") else text + "\n")
        self.err.flush()
        self._last = (2, 10)

    def fresh_line(self) -> None:
        """End a line the remote output left open, if stderr shows it."""
        if self._last is None or self._last[1] == 10:
            return
        stream = self._last[0]
        if stream == 2 or _same_screen(self.out, self.err):
            self.err.write("\n")
            self.err.flush()
        self._last = (2, 10)

    def _binary(self, stream: int) -> BinaryIO:
        text = self.err if stream == 2 else self.out
        text.flush()
        return text.buffer  # type: ignore[return-value]


def _same_screen(out: TextIO, err: TextIO) -> bool:
    """Whether stdout's bytes show where stderr's will (a terminal, or `2>&1`)."""
    try:
        if out.isatty() and err.isatty():
            return True
        a, b = os.fstat(out.fileno()), os.fstat(err.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Printer:
    """Streams output: untouched for one run, whole prefixed lines for many."""

    def __init__(self, args: argparse.Namespace, term: Terminal, multi: bool) -> None:
        self.json = args.json
        self.raw = args.raw
        self.term = term
        self.multi = multi
        self.width = 0

    def output(self, view: RunView, stream: int, data: bytes) -> None:
        if stream == 2 and not view.first_stderr_line:
            view.first_stderr_line = _first_line(data)
        if self.json:
            (view.stderr if stream == 2 else view.stdout).extend(data)
            return
        if not self.multi:
            self.term.write(stream, data)
            return
        # Many agents: whole lines only, each prefixed, so no agent's bytes
        # ever split another agent's line.
        buf = view.partial[stream]
        buf.extend(data)
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > HUGE_LINE:  # a huge line with no newline: emit it in pieces
                self.write_lines(view, stream, bytes(buf))
                buf.clear()
            return
        self.write_lines(view, stream, bytes(buf[: end + 1]))
        del buf[: end + 1]

    def finish(self, view: RunView) -> None:
        if self.multi and not self.json:
            for stream in (1, 2):
                if view.partial[stream]:
                    self.write_lines(view, stream, bytes(view.partial[stream]))
                    view.partial[stream].clear()

    def write_lines(self, view: RunView, stream: int, data: bytes) -> None:
        out = self.term.err if stream == 2 else self.term.out
        head = (paint(f"{view.info.agent:<{self.width}} |", view.colour, out) + " ").encode()
        if not self.raw:  # invalid UTF-8 shows as U+FFFD; --raw keeps the bytes
            data = data.decode("utf-8", errors="replace").encode()
        self.term.write(stream, b"".join(head + line + b"\n" for line in data.rstrip(b"\n").split(b"\n")))


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def run(args: argparse.Namespace) -> int:
    names, labels, command = parse_targets(args)
    stdin_mode, whole = _stdin_plan(args, names, labels)
    return asyncio.run(_run(args, names, labels, command, stdin_mode, whole))


def _stdin_plan(args: argparse.Namespace, names: list[str], labels: dict[str, str]) -> tuple[str, bytes]:
    """How stdin goes to the run: "" (not at all), "stream" (one target) or "whole" (``--stdin``, several).

    Several targets take all of stdin, read now, before anything runs.
    Without ``--stdin``, a stdin that is a terminal, closed or /dev/null is
    not forwarded: the plain Run call, nothing more imported.
    """
    fanout = _is_fanout(names, labels, args.all)
    if args.no_stdin or (not args.stdin and (fanout or not _stdin_has_data())):
        return "", b""
    if not fanout:
        return "stream", b""
    from sloth_core.cli import run_stdin

    return "whole", run_stdin.read_whole()


def _stdin_has_data(fd: int = 0) -> bool:
    """Whether stdin may bring bytes: not a terminal, not closed, not /dev/null (cron, subprocess.DEVNULL)."""
    import stat

    try:
        if os.isatty(fd):
            return False
        mode = os.fstat(fd)
        if stat.S_ISCHR(mode.st_mode) and os.stat(os.devnull).st_rdev == mode.st_rdev:
            return False
    except OSError:  # no stdin at all
        return False
    return True


async def _run(
    args: argparse.Namespace, names: list[str], labels: dict[str, str], command: str,
    stdin_mode: str = "", whole: bytes = b"",
) -> int:
    from sloth_core.proto import sloth_pb2 as pb

    term = Terminal()
    client = connect(args)
    views: dict[str, RunView] = {}
    order: list[str] = []
    state: dict[str, Any] = {"job": "", "interrupts": 0}
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[Any]] = set()

    def on_sigint() -> None:
        state["interrupts"] += 1
        if state["interrupts"] == 1 and state["job"]:
            term.say(paint("cancelling the job… (Ctrl-C again to stop waiting)", "33", term.err))
            task = asyncio.ensure_future(client.cancel(state["job"]))
            background.add(task)
            task.add_done_callback(lambda t: (background.discard(t), t.exception() if not t.cancelled() else None))
            loop.call_later(CANCEL_WAIT_S, main_task.cancel)
        else:
            main_task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    printer = Printer(args, term, multi=False)
    ticker: asyncio.Task[None] | None = None
    feeder: asyncio.Task[None] | None = None
    try:
        env = dict(parse_env(text) for text in args.env)
        if stdin_mode:
            stream, feeder = _interact(client, pb.RunRequest(
                target=pb.Target(names=names, labels=labels, all=args.all), command=command,
                timeout_s=args.timeout, parallel=args.parallel, env=env, cwd=args.cwd, stdin=True,
            ), stdin_mode, whole)
        else:
            stream = client.run(
                names=names, labels=labels, all_agents=args.all, command=command,
                timeout_s=args.timeout, parallel=args.parallel, env=env, cwd=args.cwd,
            )
        async for event in stream:
            kind = event.WhichOneof("kind")
            if kind == "job":
                state["job"] = event.job_id
                if event.job.warning:
                    from sloth_core.cli.render import print_warning

                    print_warning(event.job.warning)
                runs = list(event.job.runs)
                printer = Printer(args, term, multi=len(runs) > 1 or _is_fanout(names, labels, args.all))
                printer.width = max((len(r.agent) for r in runs), default=0)
                for i, info in enumerate(runs):
                    views[info.run_id] = RunView(info, AGENT_COLOURS[i % len(AGENT_COLOURS)])
                    order.append(info.run_id)
                if printer.multi and _wants_progress(args, term.err):
                    term.progress = _progress_for(term.err, runs)
                    ticker = asyncio.create_task(_tick(term.progress))
            elif kind == "output":
                view = views.get(event.run_id)
                if view is not None:
                    printer.output(view, event.output.stream, event.output.data)
            elif kind in ("started", "finished"):
                view = views.get(event.run_id)
                if view is not None:
                    view.info = getattr(event, kind)
                    if kind == "finished":
                        printer.finish(view)
                    if term.progress is not None:
                        _count(term.progress, view.info)
    except asyncio.CancelledError:
        pass
    finally:
        if feeder is not None:
            # The run is over: stdin not sent yet has nowhere to go (ssh does not wait for it either).
            feeder.cancel()
        if ticker is not None:
            ticker.cancel()
        if term.progress is not None:
            term.progress.clear()
            term.progress = None
        loop.remove_signal_handler(signal.SIGINT)
        await client.close()

    interrupted = state["interrupts"] > 0
    ordered = [views[r] for r in order]
    summary = args.summary if args.summary is not None else term.err.isatty()
    if args.json:
        for view in ordered:
            print(json.dumps(_json_row(view, command)), flush=True)
    if printer.multi:
        if summary and not args.raw and not args.json:
            _table(term, ordered, state["job"])
        elif not args.json:
            _not_run_lines(term, printer, ordered)
        term.say(_summary_line(ordered))
    elif ordered:
        _report_single(term, ordered[0], command, box_wanted=summary and not args.raw and not args.json)
    unfinished = [v for v in ordered if v.info.status in (pb.RUN_PENDING, pb.RUN_RUNNING)]
    if unfinished:
        print_error(f"{len(unfinished)} run(s) did not report an outcome; see `sloth-runner runs list`")
    if interrupted:
        return EXIT_INTERRUPTED
    if unfinished:
        return EXIT_NOT_RUN
    if not printer.multi:
        return run_exit_code(ordered[0].info if ordered else None)
    return 0 if all(v.info.status == pb.RUN_SUCCEEDED for v in ordered) else 1


def _interact(client: Any, request: Any, mode: str, whole: bytes) -> tuple[Any, asyncio.Task[None]]:
    """The run's events, and the task that sends it our stdin (streamed, or all at once for several)."""
    from sloth_core.cli import run_stdin

    interaction = client.interact(request)
    feed = run_stdin.send_whole(interaction, whole) if mode == "whole" else run_stdin.stream(interaction)
    return interaction, asyncio.create_task(feed, name="stdin")


def _wants_progress(args: argparse.Namespace, err: TextIO) -> bool:
    return args.progress if args.progress is not None else err.isatty()


def _progress_for(err: TextIO, runs: list[Any]) -> Progress:
    progress = Progress(err, len(runs))
    for info in runs:
        _count(progress, info)
    progress.draw(force=True)
    return progress


def _count(progress: Progress, info: Any) -> None:
    from sloth_core.proto import sloth_pb2 as pb

    if info.status == pb.RUN_RUNNING:
        progress.started(info.run_id, info.agent)
    elif info.status != pb.RUN_PENDING:
        progress.finished(info.run_id, info.status == pb.RUN_SUCCEEDED)


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        progress.draw()


def _is_fanout(names: list[str], labels: dict[str, str], all_agents: bool) -> bool:
    from sloth_core.names import is_glob

    return all_agents or bool(labels) or len(names) > 1 or any(is_glob(n) for n in names)


def _status(info: Any) -> str:
    from sloth_core.status_words import run_key

    return run_key(info.status)


def _elapsed(info: Any) -> float:
    return max(0.0, info.finished_at - info.started_at) if info.started_at and info.finished_at else 0.0


def _json_row(view: RunView, command: str) -> dict[str, Any]:
    info = view.info
    return {
        "agent": info.agent,
        "run_id": info.run_id,
        "job_id": info.job_id,
        "command": command,
        "status": _status(info),
        "exit_code": info.exit_code if info.exit_code >= 0 else None,
        "stdout": view.stdout.decode("utf-8", errors="replace"),
        "stderr": view.stderr.decode("utf-8", errors="replace"),
        "started_at": info.started_at or None,
        "duration_s": round(_elapsed(info), 6),
        "error": info.error or None,
    }


def _report_single(term: Terminal, view: RunView, command: str, *, box_wanted: bool) -> None:
    """The box when wanted; otherwise one `error:` line when the command could not run."""
    from sloth_core.proto import sloth_pb2 as pb

    info = view.info
    if info.status == pb.RUN_REJECTED or not box_wanted:
        never_ran = info.status == pb.RUN_FAILED and info.exit_code < 0 and info.error
        if info.status not in (pb.RUN_SUCCEEDED, pb.RUN_FAILED) or never_ran:
            term.fresh_line()
            print_error(shown(info.error) or "the run did not finish")
        return
    ok = info.status == pb.RUN_SUCCEEDED
    rows = [("Command", shorten(command, _columns() - 16)), ("Status", _status(info))]
    if info.exit_code >= 0:
        rows.append(("Exit code", str(info.exit_code)))
    if info.started_at:
        rows.append(("Duration", duration(_elapsed(info))))
    if info.error:
        rows.append(("Error", shown(info.error)))
    rows.append(("Run", info.run_id))
    term.say(box(f"Command Execution Result on {info.agent}", rows, ok=ok, stream=term.err))


def shorten(command: str, width: int) -> str:
    """The command on one line of at most ``width`` characters (``…`` marks a cut)."""
    width = max(width, 20)
    lines = command.strip().splitlines() or [""]
    text = shown(lines[0])  # what agents and commands wrote is shown, never obeyed
    if len(lines) > 1:
        text += " …"
    return text if len(text) <= width else text[: width - 1] + "…"


def _columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _table(term: Terminal, views: list[RunView], job_id: str) -> None:
    """One compact row per run: agent, status, exit, duration, first error line."""
    err = term.err
    width = max(len("AGENT"), *(len(v.info.agent) for v in views))
    rows = [paint(f"{'AGENT':<{width}}  {'STATUS':<10} {'EXIT':>4}  {'DURATION':<9} ERROR", "1", err)]
    room = max(20, _columns() - width - 31)
    for view in views:
        info = view.info
        status = _status(info)
        code = str(info.exit_code) if info.exit_code >= 0 else "-"
        dur = duration(_elapsed(info)) if info.started_at else "-"
        error = _first_line((info.error or "").encode()) or (view.first_stderr_line if status != "succeeded" else "")
        rows.append(
            f"{info.agent:<{width}}  {paint(f'{status:<10}', STATUS_COLOURS.get(status, '0'), err)} "
            f"{code:>4}  {dur:<9} {shorten(error, room) if error else ''}".rstrip()
        )
    if job_id:
        rows.append(paint(f"job {job_id}: `sloth-runner runs list --job {job_id}`", "90", err))
    term.say("\n".join(rows))


def _not_run_lines(term: Terminal, printer: Printer, views: list[RunView]) -> None:
    """Without the table, why a run could not run still reaches stderr, one prefixed line each."""
    from sloth_core.proto import sloth_pb2 as pb

    for view in views:
        if view.info.status in (pb.RUN_REJECTED, pb.RUN_LOST):
            printer.write_lines(view, 2, f"error: {shown(view.info.error) or _status(view.info)}".encode())


def _summary_line(views: list[RunView]) -> str:
    counts: dict[str, int] = {}
    for view in views:
        counts[_status(view.info)] = counts.get(_status(view.info), 0) + 1
    parts = [f"{counts.get(k, 0)} {k}" for k in ("succeeded", "failed", "rejected")]
    extra = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k not in ("succeeded", "failed", "rejected")]
    return ", ".join([*parts, *extra])
