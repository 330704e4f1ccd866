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


def _row(info: Any) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "job_id": info.job_id,
        "agent": info.agent,
        "command": info.command,
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
    now = time.time()
    print(f"{'RUN':<12} {'JOB':<12} {'AGENT':<16} {'STATUS':<10} {'EXIT':>4}  {'WHEN':<10} {'BY':<14} COMMAND")
    for info in runs:
        status = _status(info)
        code = str(info.exit_code) if info.exit_code >= 0 else "-"
        print(
            f"{info.run_id:<12} {info.job_id:<12} {info.agent:<16} "
            f"{paint(f'{status:<10}', STATUS_COLOURS.get(status, '0'))} {code:>4}  "
            f"{ago(info.created_at, now):<10} {info.requested_by:<14} {shown(info.command)}"
        )
    return 0


def show(args: argparse.Namespace) -> int:
    async def body(client: Any) -> int:
        info = await client.get_run(args.run_id)
        if args.json and not args.follow:
            row = _row(info)
            out, err = bytearray(), bytearray()
            async for event in client.stream_run(args.run_id):
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
        async for event in client.stream_run(args.run_id, follow=args.follow):
            kind = event.WhichOneof("kind")
            if kind == "output":
                out = sys.stderr if event.output.stream == 2 else sys.stdout
                if args.raw:
                    out.buffer.write(event.output.data)
                    out.buffer.flush()
                else:
                    out.write(decoders[event.output.stream].decode(event.output.data))
                    out.flush()
            elif kind == "dropped" and not args.raw:
                print(paint(f"\n[… {event.dropped} bytes not kept in history …]\n", "33"), flush=True)
            elif kind == "finished":
                info = event.finished
        if not args.raw:
            _footer(info)
        return 0

    return with_client(args, body)


def _header(info: Any) -> None:
    status = _status(info)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created_at))
    print(paint(f"run {info.run_id}", "1") + f" (job {info.job_id}) on {info.agent}, by {info.requested_by}, {when}")
    print(f"$ {shown(info.command)}")
    print(f"status: {paint(status, STATUS_COLOURS.get(status, '0'))}")
    print("─" * 40, flush=True)


def _footer(info: Any) -> None:
    status = _status(info)
    print("─" * 40)
    parts = [f"status: {paint(status, STATUS_COLOURS.get(status, '0'))}"]
    if info.exit_code >= 0:
        parts.append(f"exit code: {info.exit_code}")
    if info.started_at and info.finished_at:
        parts.append(f"duration: {duration(info.finished_at - info.started_at)}")
    print(", ".join(parts))
    if info.error:
        print(f"error: {shown(info.error)}")
    if info.dropped_bytes:
        print(paint(f"output truncated in history: {info.dropped_bytes} bytes dropped (head and tail kept)", "33"))


def cancel(args: argparse.Namespace) -> int:
    cancelled = with_client(args, lambda c: c.cancel(args.id))
    if cancelled:
        print(f"cancelling {len(cancelled)} run(s): {', '.join(cancelled)}")
    else:
        print(f"nothing to cancel: {args.id} is not running")
    return 0
