"""`agent shell`'s terminal side against a stand-in for the master: a real pseudo-terminal, a fake call."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import termios
from collections.abc import AsyncIterator, Iterator

import pytest

from sloth_core.cli.local_tty import LocalTerminal
from sloth_core.cli.shell_session import run_session
from sloth_core.errors import MasterUnreachableError
from sloth_core.harness import wait_until
from sloth_core.proto import sloth_pb2 as pb

pytestmark = pytest.mark.timeout(20)


class FakeCall:
    """What the master would do: accept (or reject) the session, then follow the test's script."""

    def __init__(self, status: int = pb.RUN_RUNNING) -> None:
        self.status = status
        self.sent = bytearray()
        self.sizes: list[tuple[int, int]] = []
        self.cancelled = False
        self.outputs: asyncio.Queue[bytes | pb.RunInfo | Exception] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[pb.RunEvent]:
        info = pb.RunInfo(run_id="r-1", agent="web-1", status=self.status, error="agent offline", kind=pb.RUN_SHELL)
        yield pb.RunEvent(job_id="j-1", job=pb.JobStarted(runs=[info]))
        if self.status == pb.RUN_REJECTED:
            return
        while True:
            item = await self.outputs.get()
            if isinstance(item, Exception):
                raise item
            if isinstance(item, pb.RunInfo):
                yield pb.RunEvent(run_id="r-1", finished=item)
                return
            yield pb.RunEvent(run_id="r-1", output=pb.OutputChunk(stream=pb.STDOUT, data=item))

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def resize(self, rows: int, cols: int) -> None:
        self.sizes.append((rows, cols))

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    """(the emulator's side, the program's side) of a fresh 24x80 pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("hhhh", 24, 80, 0, 0))
    yield master, slave
    os.close(master)
    os.close(slave)


def is_raw(fd: int) -> bool:
    return not termios.tcgetattr(fd)[3] & (termios.ICANON | termios.ECHO | termios.ISIG)


def screen(master: int) -> bytes:
    """What the program wrote to the terminal so far."""
    os.set_blocking(master, False)
    try:
        return os.read(master, 65536)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(master, True)


async def test_keys_go_up_as_bytes_the_screen_comes_down_and_the_terminal_is_restored(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    cooked = termios.tcgetattr(slave)
    call = FakeCall()
    session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (24, 80)))
    await wait_until(lambda: is_raw(slave), 5, what="raw mode")

    os.write(master, b"ls\x03\x1a\x04")  # Ctrl-C, Ctrl-Z, Ctrl-D: bytes for the far side, not signals here
    await wait_until(lambda: bytes(call.sent) == b"ls\x03\x1a\x04", 5, what="the keys to be sent")
    await call.outputs.put(b"\x1b[1mbold\x1b[0m\r\n")
    await wait_until(lambda: screen(master) == b"\x1b[1mbold\x1b[0m\r\n", 5, what="the screen bytes, untouched")

    await call.outputs.put(pb.RunInfo(status=pb.RUN_FAILED, exit_code=3))
    end = await asyncio.wait_for(session, 5)
    assert end.info.exit_code == 3 and end.local_signal == 0
    assert termios.tcgetattr(slave) == cooked


async def test_a_resize_is_sent_once_per_burst_of_sigwinch(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    call = FakeCall()
    session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (24, 80)))
    await wait_until(lambda: is_raw(slave), 5, what="raw mode")
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("hhhh", 50, 132, 0, 0))
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGWINCH)
    await wait_until(lambda: call.sizes, 5, what="the new size")
    await asyncio.sleep(0)  # let any further wake-up run: none may send the same size again
    assert call.sizes == [(50, 132)]
    await call.outputs.put(pb.RunInfo(status=pb.RUN_SUCCEEDED, exit_code=0))
    await asyncio.wait_for(session, 5)


async def test_a_size_changed_before_the_session_was_accepted_is_sent(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    call = FakeCall()
    session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (20, 60)))  # the request's size
    await wait_until(lambda: call.sizes == [(24, 80)], 5, what="the size the terminal has now")
    await call.outputs.put(pb.RunInfo(status=pb.RUN_SUCCEEDED, exit_code=0))
    await asyncio.wait_for(session, 5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_a_signal_here_ends_the_session_and_restores_the_terminal(pty_pair: tuple[int, int], signum: int) -> None:
    _, slave = pty_pair
    cooked = termios.tcgetattr(slave)
    call = FakeCall()
    session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (24, 80)))
    await wait_until(lambda: is_raw(slave), 5, what="raw mode")
    os.kill(os.getpid(), signum)
    end = await asyncio.wait_for(session, 5)
    assert end.local_signal == signum and call.cancelled
    assert termios.tcgetattr(slave) == cooked
    assert signal.getsignal(signum) == signal.SIG_DFL  # our handlers are gone with the session


async def test_a_lost_master_raises_after_the_terminal_is_restored(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    cooked = termios.tcgetattr(slave)
    call = FakeCall()
    session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (24, 80)))
    await wait_until(lambda: is_raw(slave), 5, what="raw mode")
    await call.outputs.put(MasterUnreachableError("lost the connection to the master at 127.0.0.1:1"))
    with pytest.raises(MasterUnreachableError):
        await asyncio.wait_for(session, 5)
    assert termios.tcgetattr(slave) == cooked and call.cancelled


async def test_a_rejected_session_never_touches_the_terminal(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    went_raw: list[bool] = []

    class Watched(LocalTerminal):
        def raw(self) -> None:
            went_raw.append(True)
            super().raw()

    end = await asyncio.wait_for(run_session(FakeCall(pb.RUN_REJECTED), Watched(slave, slave), (24, 80)), 5)
    assert end.info.status == pb.RUN_REJECTED and not went_raw


async def test_the_terminal_going_away_ends_the_session_as_a_hangup() -> None:
    master, slave = os.openpty()
    call = FakeCall()
    try:
        session = asyncio.create_task(run_session(call, LocalTerminal(slave, slave), (24, 80)))
        await wait_until(lambda: is_raw(slave), 5, what="raw mode")
        os.close(master)  # the emulator's window was closed: reads give EIO from now on
        end = await asyncio.wait_for(session, 5)
    finally:
        os.close(slave)
    assert end.local_signal == signal.SIGHUP and call.cancelled
