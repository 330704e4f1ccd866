"""`sloth-runner agent run TARGETS COMMAND`: run, stream, summarise, exit like ssh."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import json
import math
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from sloth_core.cli.common import connect
from sloth_core.cli.render import AGENT_COLOURS, STATUS_COLOURS, box, duration, paint, print_error
from sloth_core.errors import UsageError
from sloth_core.escape import shown
from sloth_core.names import parse_label

EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_INTERRUPTED = 130
EXIT_NOT_RUN = 255  # as ssh: the remote command could not run or finish
MAX_BOXES = 5
CANCEL_WAIT_S = 10.0


@dataclass
class RunView:
    """What the CLI knows of one run while it streams."""

    info: Any
    colour: str = "0"
    stdout: bytearray = field(default_factory=bytearray)  # kept only for --json
    stderr: bytearray = field(default_factory=bytearray)
    partial: dict[int, bytearray] = field(default_factory=lambda: {1: bytearray(), 2: bytearray()})
    decoders: dict[int, Any] = field(
        default_factory=lambda: {s: codecs.getincrementaldecoder("utf-8")("replace") for s in (1, 2)}
    )


def parse_targets(args: argparse.Namespace) -> tuple[list[str], dict[str, str], str]:
    targets, command = args.targets, args.command
    if command is None:
        if args.all or args.label:
            targets, command = "", targets
        else:
            raise UsageError("missing COMMAND: sloth-runner agent run TARGETS 'COMMAND'")
    if not command or not command.strip():
        raise UsageError("empty command: give the command to run")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    labels = dict(parse_label(text) for text in args.label)
    if not names and not labels and not args.all:
        raise UsageError("no target: name an agent, a comma list or a glob, or use --label/--all")
    if args.all and names:
        raise UsageError("use either TARGETS or --all, not both")
    if not math.isfinite(args.timeout) or args.timeout < 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.parallel < 0:
        raise UsageError("--parallel must be positive")
    return names, labels, command


class Printer:
    """Streams output to the terminal: plain for one run, prefixed lines for many."""

    def __init__(self, args: argparse.Namespace, multi: bool) -> None:
        self.raw = args.raw
        self.json = args.json
        self.multi = multi
        self.width = 0

    def output(self, view: RunView, stream: int, data: bytes) -> None:
        if self.json:
            (view.stderr if stream == 2 else view.stdout).extend(data)
            return
        out = sys.stderr if stream == 2 else sys.stdout
        if self.raw and not self.multi:
            out.flush()
            out.buffer.write(data)
            out.buffer.flush()
            return
        if not self.multi:
            out.write(view.decoders[stream].decode(data))
            out.flush()
            return
        # Many agents: whole lines only, each prefixed, so no agent's bytes
        # ever split another agent's line.
        buf = view.partial[stream]
        buf.extend(data)
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > 1024 * 1024:  # a huge line with no newline: emit it in pieces
                self._lines(view, stream, bytes(buf))
                buf.clear()
            return
        self._lines(view, stream, bytes(buf[: end + 1]))
        del buf[: end + 1]

    def finish(self, view: RunView) -> None:
        if not self.multi and not self.json and not self.raw:
            # An incomplete UTF-8 sequence at the very end shows as U+FFFD.
            for stream, out in ((1, sys.stdout), (2, sys.stderr)):
                tail = view.decoders[stream].decode(b"", final=True)
                if tail:
                    out.write(tail)
                    out.flush()
        if self.multi and not self.json:
            for stream in (1, 2):
                if view.partial[stream]:
                    self._lines(view, stream, bytes(view.partial[stream]))
                    view.partial[stream].clear()

    def _lines(self, view: RunView, stream: int, data: bytes) -> None:
        out = sys.stderr if stream == 2 else sys.stdout
        prefix = paint(f"{view.info.agent:<{self.width}} |", view.colour, out) + " "
        if self.raw:
            head = prefix.encode()
            out.flush()
            out.buffer.write(b"".join(head + line + b"\n" for line in data.rstrip(b"\n").split(b"\n")))
            out.buffer.flush()
            return
        text = data.decode("utf-8", errors="replace").rstrip("\n")
        out.write("".join(f"{prefix}{line}\n" for line in text.split("\n")))
        out.flush()


def run(args: argparse.Namespace) -> int:
    names, labels, command = parse_targets(args)
    return asyncio.run(_run(args, names, labels, command))


async def _run(args: argparse.Namespace, names: list[str], labels: dict[str, str], command: str) -> int:
    from sloth_core.proto import sloth_pb2 as pb

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
            print(paint("\ncancelling the job… (Ctrl-C again to stop waiting)", "33", sys.stderr), file=sys.stderr)
            task = asyncio.ensure_future(client.cancel(state["job"]))
            background.add(task)
            task.add_done_callback(lambda t: (background.discard(t), t.exception() if not t.cancelled() else None))
            loop.call_later(CANCEL_WAIT_S, main_task.cancel)
        else:
            main_task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    printer = Printer(args, multi=False)
    try:
        stream = client.run(
            names=names, labels=labels, all_agents=args.all, command=command,
            timeout_s=args.timeout, parallel=args.parallel,
        )
        async for event in stream:
            kind = event.WhichOneof("kind")
            if kind == "job":
                state["job"] = event.job_id
                if event.job.warning:
                    from sloth_core.cli.render import print_warning

                    print_warning(event.job.warning)
                runs = list(event.job.runs)
                printer = Printer(args, multi=len(runs) > 1 or _is_fanout(names, labels, args.all))
                printer.width = max((len(r.agent) for r in runs), default=0)
                for i, info in enumerate(runs):
                    views[info.run_id] = RunView(info, AGENT_COLOURS[i % len(AGENT_COLOURS)])
                    order.append(info.run_id)
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
    except asyncio.CancelledError:
        pass
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await client.close()

    interrupted = state["interrupts"] > 0
    ordered = [views[r] for r in order]
    if args.json:
        for view in ordered:
            print(json.dumps(_json_row(view, command)))
    elif not args.raw:
        _report(ordered, command, printer.multi)
    elif printer.multi:
        _summary_line(ordered)
    unfinished = [v for v in ordered if v.info.status in (pb.RUN_PENDING, pb.RUN_RUNNING)]
    if unfinished:
        print_error(f"{len(unfinished)} run(s) did not report an outcome; see `sloth-runner runs list`")
    if interrupted:
        return EXIT_INTERRUPTED
    if unfinished:
        return EXIT_NOT_RUN
    if not printer.multi:
        return _single_exit(ordered[0].info if ordered else None, args)
    return 0 if all(v.info.status == pb.RUN_SUCCEEDED for v in ordered) else 1


def _is_fanout(names: list[str], labels: dict[str, str], all_agents: bool) -> bool:
    from sloth_core.names import is_glob

    return all_agents or bool(labels) or len(names) > 1 or any(is_glob(n) for n in names)


def _single_exit(info: Any, args: argparse.Namespace) -> int:
    from sloth_core.proto import sloth_pb2 as pb

    if info is None:
        return EXIT_NOT_RUN
    if info.status == pb.RUN_SUCCEEDED:
        return 0
    if info.status == pb.RUN_FAILED:
        return info.exit_code if 0 < info.exit_code < 256 else 1
    if info.status == pb.RUN_TIMED_OUT:
        return EXIT_TIMEOUT
    if info.status == pb.RUN_CANCELLED:
        return EXIT_INTERRUPTED
    if args.raw or args.json or info.status != pb.RUN_REJECTED:
        # The box (if any) went to stdout; the reason also goes to stderr, as one line.
        print_error(shown(info.error) or "the run did not finish")
    return EXIT_NOT_RUN


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


def _report(views: list[RunView], command: str, multi: bool) -> None:
    from sloth_core.proto import sloth_pb2 as pb

    if not multi:
        if views and views[0].info.status == pb.RUN_REJECTED:
            print_error(shown(views[0].info.error))
            return
    if len(views) <= MAX_BOXES:
        for view in views:
            _box(view, command)
    else:
        _table(views)
    if multi:
        _summary_line(views)


def _box(view: RunView, command: str) -> None:
    from sloth_core.proto import sloth_pb2 as pb

    info = view.info
    ok = info.status == pb.RUN_SUCCEEDED
    rows = [("Command", shown(command)), ("Status", _status(info))]
    if info.exit_code >= 0:
        rows.append(("Exit code", str(info.exit_code)))
    if info.started_at:
        rows.append(("Duration", duration(_elapsed(info))))
    if info.error:
        rows.append(("Error", shown(info.error)))
    rows.append(("Run", info.run_id))
    sys.stdout.flush()
    print(box(f"Command Execution Result on {info.agent}", rows, ok=ok))


def _table(views: list[RunView]) -> None:
    width = max(len(v.info.agent) for v in views)
    print(f"{'AGENT':<{width}}  {'STATUS':<10} {'EXIT':>4}  DURATION  ERROR")
    for view in views:
        info = view.info
        status = _status(info)
        code = str(info.exit_code) if info.exit_code >= 0 else "-"
        dur = duration(_elapsed(info)) if info.started_at else "-"
        print(
            f"{info.agent:<{width}}  {paint(f'{status:<10}', STATUS_COLOURS.get(status, '0'))} "
            f"{code:>4}  {dur:<9} {shown(info.error)}"
        )


def _summary_line(views: list[RunView]) -> None:
    counts: dict[str, int] = {}
    for view in views:
        counts[_status(view.info)] = counts.get(_status(view.info), 0) + 1
    parts = [f"{counts.get(k, 0)} {k}" for k in ("succeeded", "failed", "rejected")]
    parts += [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k not in ("succeeded", "failed", "rejected")]
    print(", ".join(parts), file=sys.stdout)
