"""A program on a pseudo-terminal, driven as a person at a keyboard would: for `agent shell`'s tests and benchmark.

Standard library only: ``os.openpty`` gives the terminal, the program gets
its slave side as stdin, stdout and stderr, and we type into and read from
the master side. The slave stays open here too, so the terminal's settings
can be read after the program has exited (was it left raw?).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time


class PtyProcess:
    """``argv`` running on a fresh pseudo-terminal of ``rows`` x ``cols``."""

    def __init__(self, argv: list[str], env: dict[str, str], *, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        self._set_size(rows, cols)
        self.cooked = termios.tcgetattr(self.slave)
        """The terminal's settings before the program touched them."""
        self.output = bytearray()
        """Everything the program wrote so far."""
        self.proc = subprocess.Popen(
            argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _set_size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("hhhh", rows, cols, 0, 0))

    def type(self, data: bytes | str) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def resize(self, rows: int, cols: int) -> None:
        """What a terminal emulator does when its window changes: the new size, then SIGWINCH."""
        self._set_size(rows, cols)
        os.kill(self.proc.pid, signal.SIGWINCH)

    def read_some(self, timeout: float) -> bytes:
        """What arrives within ``timeout`` seconds (b"" if nothing did)."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return b""
        self.output += data
        return data

    def expect(self, pattern: bytes | re.Pattern[bytes], timeout: float = 15.0, *, since: int = 0) -> re.Match[bytes]:
        """Read until ``pattern`` shows in the output after offset ``since``; the match."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(bytes(self.output), since)
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{pattern!r} did not show within {timeout:g} s; the screen: {bytes(self.output[-2000:])!r}")
            if not self.read_some(min(left, 0.5)) and self.proc.poll() is not None:
                # The program is gone: what it left in the terminal is all there will be.
                while self.read_some(0):
                    pass
                found = regex.search(bytes(self.output), since)
                if found:
                    return found
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r} showed: {bytes(self.output[-2000:])!r}")

    def wait(self, timeout: float = 15.0) -> int:
        """The exit code, reading the output meanwhile (a full terminal would block the program)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still running after {timeout:g} s: {bytes(self.output[-2000:])!r}")
            self.read_some(0.05)
        while self.read_some(0):
            pass
        return self.proc.returncode

    def settings(self) -> list[object]:
        """The terminal's settings now."""
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
