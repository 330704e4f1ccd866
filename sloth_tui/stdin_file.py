"""``--stdin FILE`` at the prompt: a local file streamed as the command's stdin.

The file is read on the console's machine in chunks as the master takes
them (flow control, not a copy in memory); the master gives every target
the same bytes and the end of input once the file ends. A regular file is
read inline: unlike `agent run`'s stdin (:mod:`sloth_core.cli.run_stdin`),
which may be a pipe that never ends, its reads never wait long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sloth_core.errors import SlothError, UsageError

if TYPE_CHECKING:
    from sloth_core.client import Interaction, MasterClient
    from sloth_core.proto import sloth_pb2 as pb


def checked_path(typed: str) -> str:
    """The file ``typed`` names (``~`` expanded), if it can be sent; else a UsageError saying why."""
    path = os.path.expanduser(typed)
    if not os.path.exists(path):
        raise UsageError(f"--stdin: no such file: {typed}")
    if os.path.isdir(path):
        raise UsageError(f"--stdin: {typed} is a directory")
    if not os.access(path, os.R_OK):
        raise UsageError(f"--stdin: cannot read {typed}")
    return path


async def run_with_file(client: MasterClient, request: pb.RunRequest, path: str) -> AsyncIterator[pb.RunEvent]:
    """The job's events, as :meth:`MasterClient.run` gives them, while ``path`` is sent as its stdin."""
    interaction = client.interact(request)
    failed: list[SlothError] = []
    sender = asyncio.create_task(_send(interaction, path, failed))
    try:
        async for event in interaction:
            yield event
    except (SlothError, asyncio.CancelledError):
        if not failed:
            raise  # otherwise the call ended because the file could not be read: say that instead
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    if failed:
        raise failed[0]


async def _send(interaction: Interaction, path: str, failed: list[SlothError]) -> None:
    from sloth_core.client import INPUT_CHUNK

    try:
        with open(path, "rb") as f:
            while chunk := f.read(INPUT_CHUNK):
                await interaction.send(chunk)
    except OSError as exc:
        # Stopped rather than left to finish on part of its input.
        failed.append(SlothError(f"could not read {path}: {exc.strerror or exc}"))
        interaction.cancel()
        return
    await interaction.close_input()
