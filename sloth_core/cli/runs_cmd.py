"""`sloth-runner runs list|show|cancel`: the run history."""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from typing import Any

from sloth_core.cli.common import with_client
from sloth_core.cli.render import STATUS_COLOURS, ago, duration, paint
from sloth_core.escape import shown


def _status(info: Any) -> str:
    from sloth_core.status_words import run_key

    return run_key(info.status)


def _what(info: Any) -> str:
    from sloth_core.status_words import what_ran

    return what_ran(info.command, info.kind)


def _row(info: Any) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "job_id": info.job_id,
        "agent": info.agent,
        "command": info.command,
        "kind": _kind(info),
        "requested_by": info.requested_by,
        "status": _status(info),
        "exit_code": info.exit_code if info.exit_code >= 0 else None,
        "created_at": info.created_at,
        "started_at": info.started_at or None,
        "finished_at": info.finished_at or None,
        "error": info.error or None,
        "stdout_bytes": info.stdout_bytes,
        "stderr_bytes": info.stderr_bytes,
        "dropped_bytes": info.dropped_bytes,
    }


def _kind(info: Any) -> str:
    from sloth_core.status_words import kind_word

    return kind_word(info.kind)


def list_runs(args: argparse.Namespace) -> int:
    from sloth_core.proto import sloth_pb2 as pb

    status = pb.RunStatus.Value(f"RUN_{args.status.upper()}") if args.status else 0
    runs = with_client(
        args, lambda c: c.list_runs(agent=args.agent, status=status, limit=args.limit, job_id=args.job)
    )
    if args.json:
        json.dump([_row(r) for r in runs], sys.stdout, indent=2)
        print()
        return 0
    if not runs:
        print("no runs recorded")
        return 0
    _print_table(runs)
    return 0


def _print_table(runs: list[Any]) -> None:
    from sloth_core.ids import short_ids

    now = time.time()
    short = short_ids([r.run_id for r in runs] + [r.job_id for r in runs])
    rw = max(len("RUN"), *(len(short[r.run_id]) for r in runs))
    jw = max(len("JOB"), *(len(short[r.job_id]) for r in runs))
    aw = max(len("AGENT"), *(len(r.agent) for r in runs))
    print(f"{'RUN':<{rw}} {'JOB':<{jw}} {'AGENT':<{aw}} {'STATUS':<10} {'EXIT':>4}  {'WHEN':<10} {'BY':<14} COMMAND")
    for info in runs:
        status = _status(info)
        code = str(info.exit_code) if info.exit_code >= 0 else "-"
        print(
            f"{short[info.run_id]:<{rw}} {short[info.job_id]:<{jw}} {info.agent:<{aw}} "
            f"{paint(f'{status:<10}', STATUS_COLOURS.get(status, '0'))} {code:>4}  "
            f"{ago(info.created_at, now):<10} {info.requested_by:<14} {_one_line(_what(info))}"
        )


def _one_line(command: str) -> str:
    lines = command.strip().splitlines() or [""]
    return shown(lines[0]) + (" …" if len(lines) > 1 else "")


def show(args: argparse.Namespace) -> int:
    from sloth_core.errors import RunNotFoundError

    typed = args.run_id.strip().lower()
    if typed.startswith("j-"):
        return _show_job(args)
    try:
        return _show_run(args)
    except RunNotFoundError:
        if typed.startswith("r-"):
            raise
        try:
            return _show_job(args)  # digits without r-/j-: they may name a job
        except RunNotFoundError:
            raise RunNotFoundError(f"no run or job with id {args.run_id!r}") from None


def _show_run(args: argparse.Namespace) -> int:
    async def body(client: Any) -> int:
        info = await client.get_run(args.run_id)
        run_id = info.run_id
        if args.json and not args.follow:
            row = _row(info)
            out, err = bytearray(), bytearray()
            async for event in client.stream_run(run_id):
                if event.WhichOneof("kind") == "output":
                    (err if event.output.stream == 2 else out).extend(event.output.data)
            row["stdout"] = out.decode("utf-8", errors="replace")
            row["stderr"] = err.decode("utf-8", errors="replace")
            row["truncated"] = info.dropped_bytes > 0
            print(json.dumps(row, indent=2))
            return 0
        if not args.raw:
            _header(info)
        decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in (1, 2)}
        last = b"\n"
        async for event in client.stream_run(run_id, follow=args.follow):
            kind = event.WhichOneof("kind")
            if kind == "output":
                out = sys.stderr if event.output.stream == 2 else sys.stdout
                last = event.output.data[-1:] or last
                if args.raw:
                    out.buffer.write(event.output.data)
                    out.buffer.flush()
                else:
                    out.write(decoders[event.output.stream].decode(event.output.data))
                    out.flush()
            elif kind == "dropped" and not args.raw:
                sys.stdout.flush()
                print(paint(f"\n[… {event.dropped} bytes not kept in history …]", "33", sys.stderr), file=sys.stderr, flush=True)
            elif kind == "finished":
                info = event.finished
        if not args.raw:
            _footer(info, ended_open=last != b"\n")
        return 0

    return with_client(args, body)


def _show_job(args: argparse.Namespace) -> int:
    """`runs show j-…`: the job's runs, as `runs list --job` prints them."""
    runs = with_client(args, lambda c: c.list_runs(job_id=args.run_id, limit=10_000))
    if args.json:
        json.dump([_row(r) for r in runs], sys.stdout, indent=2)
        print()
    elif runs:
        _print_table(runs)
    return 0


def _header(info: Any) -> None:
    """What run this is, on stderr: stdout carries the run's own output only."""
    from sloth_core.proto import sloth_pb2 as pb

    status = _status(info)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created_at))
    err = sys.stderr
    print(paint(f"run {info.run_id}", "1", err) + f" (job {info.job_id}) on {info.agent}, by {info.requested_by}, {when}", file=err)
    print(f"$ {_one_line(_what(info))}", file=err)
    print(f"status: {paint(status, STATUS_COLOURS.get(status, '0'), err)}", file=err)
    if info.kind == pb.RUN_SHELL:
        print(paint("a terminal session (agent shell): what was typed and shown is not recorded", "90", err), file=err)
    print("─" * 40, file=err, flush=True)


def _footer(info: Any, ended_open: bool) -> None:
    status = _status(info)
    err = sys.stderr
    sys.stdout.flush()
    if ended_open:
        print(file=err)  # the output did not end its last line
    print("─" * 40, file=err)
    parts = [f"status: {paint(status, STATUS_COLOURS.get(status, '0'), err)}"]
    if info.exit_code >= 0:
        parts.append(f"exit code: {info.exit_code}")
    if info.started_at and info.finished_at:
        parts.append(f"duration: {duration(info.finished_at - info.started_at)}")
    print(", ".join(parts), file=err)
    if info.error:
        print(f"error: {shown(info.error)}", file=err)
    if info.dropped_bytes:
        print(paint(f"output truncated in history: {info.dropped_bytes} bytes dropped (head and tail kept)", "33", err), file=err)


def cancel(args: argparse.Namespace) -> int:
    cancelled = with_client(args, lambda c: c.cancel(args.id))
    if cancelled:
        from sloth_core.ids import short_ids

        short = short_ids(cancelled)
        print(f"cancelling {len(cancelled)} run(s): {', '.join(short[c] for c in cancelled)}")
    else:
        print(f"nothing to cancel: {args.id} is not running")
    return 0
