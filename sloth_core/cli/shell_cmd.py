"""`sloth-runner agent shell NAME [-- CMD ARGS...]`: an interactive terminal on an agent, through the master.

Like ``ssh -t``: the local terminal goes raw, keys go up as bytes, the remote
screen comes down as bytes, and the exit code is the remote shell's (255
with a one-line reason when the session could not start or was lost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys

from sloth_core.cli.common import connect
from sloth_core.cli.exit_codes import EXIT_NOT_RUN, EXIT_USAGE, run_exit_code
from sloth_core.cli.local_tty import LocalTerminal
from sloth_core.cli.render import print_error
from sloth_core.cli.shell_session import SessionEnd, run_session
from sloth_core.errors import SlothError

NO_TERMINAL = (
    "agent shell needs a terminal on stdin; to run a command without one use "
    "`sloth-runner agent run NAME COMMAND`"
)


def shell(args: argparse.Namespace) -> int:
    if not os.isatty(sys.stdin.fileno()):
        print_error(NO_TERMINAL)
        return EXIT_USAGE
    # `-- top -d 1` arrives as words: quoted back into one command line, as the remote shell reads it.
    command = shlex.join(args.command) if args.command else ""
    return asyncio.run(_shell(args, command))


async def _shell(args: argparse.Namespace, command: str) -> int:
    from sloth_core.proto import sloth_pb2 as pb

    terminal = LocalTerminal(sys.stdin.fileno(), sys.stdout.fileno())
    size = terminal.size()
    # TERM is passed through as it is; without one the agent uses "dumb",
    # the only honest guess about a terminal we know nothing of.
    request = pb.RunRequest(
        target=pb.Target(names=[args.name]),
        command=command,
        pty=pb.Pty(term=os.environ.get("TERM", ""), size=pb.WindowSize(rows=size[0], cols=size[1])),
    )
    client = connect(args)
    try:
        end = await run_session(client.interact(request), terminal, size)
    except SlothError:
        terminal.fresh_line()
        raise
    finally:
        await client.close()
    reason = _reason(end, args.name)
    if reason:
        terminal.fresh_line()
        print_error(reason)
    return _exit_code(end)


def _reason(end: SessionEnd, agent: str) -> str:
    """Why the session did not end with its shell's own exit: one line, or "" when it did."""
    from sloth_core.escape import shown
    from sloth_core.proto import sloth_pb2 as pb
    from sloth_core.status_words import run_word

    if end.local_signal:
        return f"the session on {agent} ended: sloth-runner received {signal.Signals(end.local_signal).name}"
    info = end.info
    if info is None:
        return f"the session on {agent} ended without an exit status"
    if info.status == pb.RUN_CANCELLED:
        return f"the session on {agent} was cancelled"
    if info.status in (pb.RUN_SUCCEEDED, pb.RUN_FAILED) and info.exit_code >= 0:
        return ""
    return shown(info.error) or f"the session on {agent} {run_word(info.status)}"


def _exit_code(end: SessionEnd) -> int:
    if end.local_signal:
        return 128 + end.local_signal  # as a shell reports a process a signal ended
    from sloth_core.proto import sloth_pb2 as pb

    if end.info is not None and end.info.status == pb.RUN_CANCELLED:
        return EXIT_NOT_RUN  # `runs cancel` (or the master) ended it: the session was lost, not interrupted here
    return run_exit_code(end.info)
