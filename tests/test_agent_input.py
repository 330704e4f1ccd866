"""The agent's side of stdin and terminals, in process: the helper's pipes and pty, fed as the master would."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import re
from collections.abc import AsyncIterator, Callable

import pytest

from sloth_core.agent import processes
from sloth_core.agent.executor import Execution
from sloth_core.harness import wait_until
from sloth_core.proto import sloth_pb2 as pb

pytestmark = pytest.mark.timeout(60)

PTY = pb.Pty(term="xterm-256color", size=pb.WindowSize(rows=30, cols=100))


class Input:
    """The run's Input call as the agent sees it: messages the test puts, and whether it was closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.RunInput | None] = asyncio.Queue()
        self.opened = 0
        self.closed = asyncio.Event()

    def put(self, item: pb.RunInput) -> None:
        self.queue.put_nowait(item)

    def source(self) -> Callable[[], AsyncIterator[pb.RunInput]]:
        async def read() -> AsyncIterator[pb.RunInput]:
            self.opened += 1
            try:
                while (item := await self.queue.get()) is not None:
                    yield item
            finally:
                self.closed.set()

        return read


async def run(execution: Execution) -> bytes:
    out = b""
    async for event in execution.events():
        if event.WhichOneof("kind") == "output":
            out += event.output.data
    return out


async def test_stdin_reaches_the_command_byte_for_byte_and_eof_closes_it(helper: processes.ProcessHelper) -> None:
    payload = bytes(range(256)) * 4096 + b"\x00\r\n\xff"  # 1 MiB of every byte value, more than a pipe holds
    feed = Input()
    for start in range(0, len(payload), 65536):
        feed.put(pb.RunInput(stdin=payload[start : start + 65536]))
    feed.put(pb.RunInput(eof=True))
    execution = Execution("sha256sum; echo after-eof", 0, None, stdin=True, inputs=feed.source())
    out = await run(execution)
    assert out == f"{hashlib.sha256(payload).hexdigest()}  -\nafter-eof\n".encode()
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_SUCCEEDED


async def test_without_input_the_command_sees_eof_at_once(helper: processes.ProcessHelper) -> None:
    execution = Execution("wc -c", 0, None, stdin=True, inputs=None)
    assert await run(execution) == b"0\n"


async def test_a_command_that_never_reads_stdin_exits_with_its_own_code_while_input_keeps_coming(
    helper: processes.ProcessHelper,
) -> None:
    feed = Input()
    for _ in range(64):  # 4 MiB: far more than the pipe takes, and no EOF ever
        feed.put(pb.RunInput(stdin=b"x" * 65536))
    execution = Execution("exit 7", 0, None, stdin=True, inputs=feed.source())
    await asyncio.wait_for(run(execution), 10)
    assert execution.outcome is not None and (execution.outcome.status, execution.outcome.exit_code) == (pb.RUN_FAILED, 7)
    # The Input call is hung up (the master stops relaying), or was never opened: a command
    # that exits at once can end before the agent gets to open it.
    await wait_until(lambda: feed.opened == 0 or feed.closed.is_set(), 5, "the Input call to be hung up")


async def test_a_command_that_closes_stdin_early_is_not_an_error(helper: processes.ProcessHelper) -> None:
    feed = Input()
    for _ in range(32):
        feed.put(pb.RunInput(stdin=b"y" * 65536))
    execution = Execution("head -c 5; exec 0<&-; sleep 0.2; echo done", 0, None, stdin=True, inputs=feed.source())
    out = await asyncio.wait_for(run(execution), 10)
    assert out == b"yyyyydone\n"
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_SUCCEEDED


async def test_commands_get_default_signals_not_the_helpers_ignored_ones(helper: processes.ProcessHelper) -> None:
    # `yes` dies of SIGPIPE when `head` is done, silently, as in a terminal.
    execution = Execution("yes | head -1; grep SigIgn /proc/self/status", 0, None)
    out = await run(execution)
    lines = out.decode().splitlines()
    assert lines[0] == "y" and "Broken pipe" not in out.decode()
    ignored = int(lines[1].split()[1], 16)
    for signo in (1, 2, 13, 25):  # SIGHUP, SIGINT, SIGPIPE, SIGXFSZ
        assert not ignored & (1 << (signo - 1)), f"signal {signo} is ignored in commands"


async def test_a_terminal_session_echoes_what_is_typed_resizes_and_returns_the_exit_code(
    helper: processes.ProcessHelper,
) -> None:
    feed = Input()
    feed.put(pb.RunInput(stdin=b"stty size; echo TERM=$TERM; tty -s && echo on-a-tty\r"))
    feed.put(pb.RunInput(eof=True))  # means nothing under a terminal: Ctrl-D is a byte
    feed.put(pb.RunInput(resize=pb.WindowSize(rows=50, cols=132)))
    feed.put(pb.RunInput(stdin=b"stty size; echo $((6*7)); exit 3\r"))
    execution = Execution("", 0, None, pty=PTY, inputs=feed.source())
    out = (await asyncio.wait_for(run(execution), 20)).decode(errors="replace")
    assert "TERM=xterm-256color" in out and "on-a-tty" in out
    assert "\r\n42\r\n" in out, "typed input runs, its output comes back with a terminal's line endings"
    assert "50 132" in out
    assert execution.outcome is not None and (execution.outcome.status, execution.outcome.exit_code) == (pb.RUN_FAILED, 3)


async def test_an_empty_command_is_the_users_login_shell_in_its_home(helper: processes.ProcessHelper) -> None:
    feed = Input()
    feed.put(pb.RunInput(stdin=b'echo "argv0=$0 pwd=$PWD"; exit\r'))
    execution = Execution("", 0, None, pty=PTY, inputs=feed.source())
    out = (await asyncio.wait_for(run(execution), 20)).decode(errors="replace")
    shell = pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    assert f"argv0=-{os.path.basename(shell)} pwd={os.path.expanduser('~')}" in out


async def test_a_command_under_a_terminal_runs_through_the_shell_with_its_own_session(
    helper: processes.ProcessHelper,
) -> None:
    execution = Execution(
        "ps -o sid=,pgid=,tty= -p $$; stty size", 0, None, pty=PTY, inputs=None,
    )
    out = (await asyncio.wait_for(run(execution), 20)).decode().split()
    assert out[0] == out[1] == str(execution.pid), "its own session and process group"
    assert out[2].startswith("pts/") and out[3:] == ["30", "100"]
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_SUCCEEDED


async def test_cancelling_a_terminal_session_kills_every_job_of_the_session(helper: processes.ProcessHelper) -> None:
    feed = Input()
    # With job control each job has a group of its own: killing the shell's group is not enough.
    feed.put(pb.RunInput(stdin=b"sleep 300 & echo started:$!\r"))
    execution = Execution("", 0, None, pty=PTY, inputs=feed.source())
    events = execution.events()
    seen = b""
    async for event in events:
        if event.WhichOneof("kind") == "output":
            seen += event.output.data
            if match := re.search(rb"started:(\d+)\r\n", seen):
                break
    job = int(match.group(1))
    assert processes.spawner.proc_stat(job)[2] != execution.pid, "the job is in a group of its own"  # type: ignore[index]
    execution.cancel()
    async for _ in events:
        pass
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_CANCELLED
    await wait_until(lambda: not (processes.spawner.proc_stat(job) or (False,))[0], 5, "the job to be killed")


async def test_a_program_that_cannot_start_under_a_terminal_fails_plainly(
    helper: processes.ProcessHelper, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sloth_core.agent import executor

    monkeypatch.setattr(executor, "login_shell", lambda: "/nonexistent/shell")
    execution = Execution("", 0, None, pty=PTY, inputs=None)
    await run(execution)
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_FAILED
    assert execution.outcome.error.startswith("cannot start /nonexistent/shell")


async def test_input_that_ends_without_the_callers_eof_keeps_stdin_open_until_the_run_ends() -> None:
    # A killed caller's call can end like a half-close; `cat > f` must not be
    # told its input is complete (and succeed on half a file) before the cancel.
    from sloth_core.agent import run_input

    read_end, write_end = os.pipe()
    ended = asyncio.Event()

    async def inputs() -> AsyncIterator[pb.RunInput]:
        try:
            yield pb.RunInput(stdin=b"half")
        finally:
            ended.set()

    feeding = asyncio.create_task(run_input.feed(inputs(), write_end, terminal=False))
    try:
        await asyncio.wait_for(ended.wait(), 5)
        assert os.read(read_end, 100) == b"half"
        for _ in range(20):
            await asyncio.sleep(0)
        assert not feeding.done(), "stdin is still open after the input ended without EOF"
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        assert os.read(read_end, 100) == b"", "the run's end closes it"
    finally:
        os.close(read_end)
