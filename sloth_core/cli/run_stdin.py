"""`agent run`'s stdin: what to forward, and how, as ssh does.

- One target and a stdin that is not a terminal: it is streamed to the
  remote command as it is read (``tar c . | agent run web-1 'tar x'``), and
  its EOF closes the remote stdin. The remote command may exit before
  reading it all: the run then ends as usual, nothing waits for our EOF.
- ``-n``: nothing is sent, the remote stdin is /dev/null (``ssh -n``). A
  script that runs `agent run` with a stdin it never closes must redirect
  it (``< /dev/null``) or pass ``-n``, as with ssh.
- Several targets: stdin is sent only with ``--stdin``; it is read to EOF
  first, up to a cap, so a too-large input fails before anything runs and
  an idle stdin never holds a fan-out.

Only imported when stdin is forwarded: a plain ``agent run`` stays light.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import TYPE_CHECKING

from sloth_core import errors
from sloth_core.bounds import DEFAULT_MAX_SHARED_STDIN

if TYPE_CHECKING:
    from sloth_core.client import Interaction

READ_BYTES = 1024 * 1024  # per read (one hop from the reading thread each); the client cuts 64 KiB messages
READ_AHEAD = 2  # reads waiting for the master: what we hold beyond the call's own window


def read_whole(cap: int = DEFAULT_MAX_SHARED_STDIN, fd: int = 0) -> bytes:
    """All of stdin, for several targets; :class:`~sloth_core.errors.StdinTooLargeError` beyond ``cap``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, READ_BYTES):
        size += len(chunk)
        if size > cap:
            raise errors.StdinTooLargeError(
                f"stdin is over {cap // (1024 * 1024)} MiB, the most --stdin sends to several agents "
                "(the master keeps it whole for them); nothing ran. Copy it to one agent at a time: "
                "`agent run NAME 'cat > FILE' < FILE`"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def send_whole(interaction: Interaction, data: bytes) -> None:
    await interaction.send(data)
    await interaction.close_input()


async def stream(interaction: Interaction, fd: int = 0) -> None:
    """Send stdin as it is read, then EOF; waits while the run is behind (flow control).

    Reads happen in a daemon thread: a blocking read on a pipe that never
    ends must not keep `agent run` from exiting once the run is over.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue(READ_AHEAD)
    reader = threading.Thread(target=_read_into, args=(fd, loop, chunks), name="stdin", daemon=True)
    reader.start()
    while chunk := await chunks.get():
        await interaction.send(chunk)
    await interaction.close_input()


def _read_into(fd: int, loop: asyncio.AbstractEventLoop, chunks: asyncio.Queue[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, READ_BYTES)
        except OSError as exc:
            print(f"warning: reading stdin failed: {exc}; the remote stdin ends here", file=sys.stderr)
            chunk = b""
        try:
            # Waits for room: the loop takes a chunk only once the previous one is sent.
            asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
        except BaseException:  # the loop is gone or stopping: `agent run` is ending
            return
        if not chunk:
            return
