"""One `agent shell` session: keys up, the remote screen down, the window size on every SIGWINCH.

:func:`run_session` drives an :class:`~sloth_core.client.Interaction` (or
anything with its shape) against a :class:`LocalTerminal`. The terminal goes
raw once the master has accepted the session, and is restored on every way
out: the remote shell exits, the agent or the master is lost (the error is
raised after the restore), SIGTERM/SIGHUP/SIGINT reach this process, or the
terminal itself goes away. Leaving ends the call, so the master ends the
session and the agent kills its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sloth_core.cli.local_tty import LocalTerminal

if TYPE_CHECKING:
    from sloth_core.proto import sloth_pb2 as pb

#: Signals that end the session from this side (the terminal is restored first).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class SessionCall(Protocol):
    """What a session needs of :class:`~sloth_core.client.Interaction`."""

    def __aiter__(self) -> AsyncIterator[pb.RunEvent]: ...
    async def send(self, data: bytes) -> None: ...
    async def resize(self, rows: int, cols: int) -> None: ...
    def cancel(self) -> None: ...


@dataclass
class SessionEnd:
    """How a session ended."""

    info: Any = None
    """The run as the master last described it (``pb.RunInfo``); None if it never said."""
    local_signal: int = 0
    """The signal that ended it from this side (SIGHUP also when the terminal went away)."""


async def run_session(call: SessionCall, terminal: LocalTerminal, sent_size: tuple[int, int]) -> SessionEnd:
    """Run the session to its end; raises the call's :class:`~sloth_core.errors.SlothError` (terminal restored).

    ``sent_size``: the window size the request carried; a change since then is sent once the session is accepted.
    """
    from sloth_core.proto import sloth_pb2 as pb

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    end = SessionEnd()
    resized = asyncio.Event()
    helpers: list[asyncio.Task[None]] = []

    def stop(signum: int) -> None:
        if not end.local_signal:
            end.local_signal = signum
            main.cancel()

    for signum in ENDING_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    loop.add_signal_handler(signal.SIGWINCH, resized.set)
    try:
        async for event in call:
            kind = event.WhichOneof("kind")
            if kind == "output":
                terminal.write(event.output.data)
            elif kind == "job":
                end.info = event.job.runs[0] if event.job.runs else None
                if end.info is not None and end.info.status != pb.RUN_REJECTED:
                    terminal.raw()
                    helpers.append(asyncio.create_task(_keys(call, terminal, stop)))
                    helpers.append(asyncio.create_task(_window(call, terminal, resized, sent_size)))
            elif kind in ("started", "finished"):
                end.info = getattr(event, kind)
    except asyncio.CancelledError:
        if not end.local_signal:
            raise
        main.uncancel()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        call.cancel()  # a no-op once the run is over; otherwise the master ends the session
        for signum in (*ENDING_SIGNALS, signal.SIGWINCH):
            loop.remove_signal_handler(signum)
        terminal.restore()
    return end


async def _keys(call: SessionCall, terminal: LocalTerminal, stop: Any) -> None:
    """Every byte typed goes to the remote terminal, as typed; a terminal that hangs up ends the session."""
    while data := await terminal.read():
        await call.send(data)
    stop(signal.SIGHUP)


async def _window(call: SessionCall, terminal: LocalTerminal, resized: asyncio.Event, last: tuple[int, int]) -> None:
    """The window's size after each SIGWINCH (a burst of them sends the last size once)."""
    while True:
        size = terminal.size()
        if size != last:
            last = size
            await call.resize(*size)
        await resized.wait()
        resized.clear()
