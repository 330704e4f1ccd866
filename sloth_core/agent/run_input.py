"""Feeding a run what its caller sends: stdin bytes, the end of stdin, window sizes.

The input arrives on the ``AgentSession.Input`` call the agent opens for the
run (:mod:`sloth_core.agent.session`) and goes into the command's stdin
pipe, or into the master side of its pseudo-terminal. Writes wait for the
command to read (the pipe's buffer is the only one here), so a command that
reads slowly slows the Input call, the master's relay and, in the end, the
caller: memory stays bounded on every hop.

A command that exits, or closes its stdin, while input still arrives does
not fail its run: the write error (EPIPE; EIO on a terminal whose side is
closed) just ends the feeding.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import termios
from collections.abc import AsyncIterator

from sloth_core.proto import sloth_pb2 as pb

MAX_ROWS_COLS = 10_000  # a window size beyond this is a bogus message, not a terminal

log = logging.getLogger(__name__)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a terminal (the kernel then sends SIGWINCH to its foreground group)."""
    rows, cols = min(rows, MAX_ROWS_COLS), min(cols, MAX_ROWS_COLS)
    if rows and cols:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _WritePipe(asyncio.BaseProtocol):
    """Flow control for one write transport: :meth:`drain` waits while its buffer is full."""

    def __init__(self) -> None:
        self.lost = False
        self._resumed: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True  # EPIPE/EIO or closed: the command reads no more
        self._wake()

    def _wake(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    async def drain(self) -> None:
        if self._resumed is not None:
            await self._resumed


async def feed(inputs: AsyncIterator[pb.RunInput], fd: int, *, terminal: bool) -> None:
    """Write what ``inputs`` brings into ``fd`` (ours: closed when done) until EOF or the command stops reading.

    On a terminal, EOF is not a message (Ctrl-D is a byte the caller types)
    and window sizes apply; on a pipe, EOF closes the command's stdin.
    """
    loop = asyncio.get_running_loop()
    protocol = _WritePipe()
    transport, _ = await loop.connect_write_pipe(lambda: protocol, open(fd, "wb", buffering=0))
    try:
        if not await _copy(inputs, transport, protocol, fd, terminal=terminal) and not terminal:
            # The input ended without the caller's EOF: the caller or its master
            # went away. Closing stdin now would tell `cat > f` its input is
            # complete, and it would record half a file as a success before the
            # cancel arrives; stdin stays open until the run is cancelled.
            await asyncio.Event().wait()
    except BaseException:
        transport.abort()  # the run is over: what is unwritten is dropped
        raise
    finally:
        if not transport.is_closing():
            transport.close()  # after what is buffered is written: then the command sees EOF


async def _copy(
    inputs: AsyncIterator[pb.RunInput], transport: asyncio.WriteTransport, protocol: _WritePipe, fd: int, *, terminal: bool
) -> bool:
    """Copy until the caller's EOF (True), the command stops reading (True) or the input ends or breaks (False)."""
    try:
        async for item in inputs:
            kind = item.WhichOneof("kind")
            if kind == "stdin":
                if protocol.lost:
                    return True  # it closed its stdin (or exited): later bytes have nowhere to go
                transport.write(item.stdin)
                await protocol.drain()
            elif kind == "resize" and terminal:
                set_window_size(fd, item.resize.rows, item.resize.cols)
            elif kind == "eof" and not terminal:
                return True
    except Exception as exc:  # the Input call broke: as an end without EOF
        log.info("the input of a run ended without EOF: %s", exc)
    return False


def close_quietly(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
