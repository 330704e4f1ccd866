"""The operator's own terminal during `agent shell`: raw while the session runs, restored on the way out.

Raw mode (as ssh puts it) hands every byte to the remote side: Ctrl-C,
Ctrl-Z and Ctrl-D are characters for the remote PTY to interpret, not
signals or end-of-file for us. :meth:`LocalTerminal.restore` puts back the
settings saved by :meth:`LocalTerminal.raw`; the session calls it in a
``finally``, and its signal handlers turn SIGTERM and SIGHUP into a normal
way out, so the terminal is left usable however the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
import tty

DEFAULT_SIZE = (24, 80)
READ_CHUNK = 64 * 1024  # the most one input message carries (client.INPUT_CHUNK)


class LocalTerminal:
    """The terminal on ``in_fd`` (keys) and ``out_fd`` (the remote screen)."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._saved: list[object] | None = None
        self._last_byte = b"\n"

    def size(self) -> tuple[int, int]:
        """(rows, cols): of the input terminal, else the output's, else 24x80."""
        for fd in (self.in_fd, self.out_fd):
            try:
                rows, cols = struct.unpack("hhhh", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            except OSError:
                continue
            if rows > 0 and cols > 0:
                return rows, cols
        return DEFAULT_SIZE

    @property
    def is_raw(self) -> bool:
        return self._saved is not None

    def raw(self) -> None:
        """Raw mode, keeping what was typed ahead (TCSANOW, not tty's default TCSAFLUSH)."""
        if self._saved is None:
            self._saved = termios.tcgetattr(self.in_fd)
            tty.setraw(self.in_fd, termios.TCSANOW)

    def restore(self) -> None:
        """Back to the settings :meth:`raw` found (after the output already written has drained)."""
        saved, self._saved = self._saved, None
        if saved is not None:
            # A terminal that hung up cannot be restored, and needs no restoring.
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, saved)

    async def read(self) -> bytes:
        """The next keys typed (b"" once the terminal is gone)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.in_fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(self.in_fd)
        try:
            return os.read(self.in_fd, READ_CHUNK)
        except OSError:  # EIO: the terminal hung up
            return b""

    def write(self, data: bytes) -> None:
        """The remote screen's bytes, untouched (it is a terminal session: the far side drew them for us)."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.out_fd, view)
            except BlockingIOError:
                _wait_writable(self.out_fd)
                continue
            except OSError:
                return  # the terminal is gone; the session ends through its input side
            view = view[written:]
        if data:
            self._last_byte = data[-1:]

    def fresh_line(self) -> None:
        """End the line the remote screen left the cursor on, so a message of ours starts at column 0."""
        if self._last_byte not in (b"\n", b""):
            self.write(b"\r\n")


def _wait_writable(fd: int) -> None:
    import select

    select.select([], [fd], [])
