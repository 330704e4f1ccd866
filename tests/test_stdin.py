"""Stdin for runs and terminal sessions, across real processes: CLI → master → agent and back."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from sloth_core import errors
from sloth_core.harness import wait_for
from sloth_core.proto import sloth_pb2 as pb
from tests.fleet import EXE, Fleet
from tests.test_fleet_runs import gone, rss_kib, runs
from tests.test_watch import admin_client

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


@pytest.fixture
def three(fleet: Fleet) -> Fleet:
    fleet.start_master()
    for name in ("a1", "a2", "a3"):
        fleet.start_agent(name)
    return fleet


def agent_run(fleet: Fleet, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    """`agent run` in the background with its stdin a pipe we hold (or ``stdin``)."""
    return subprocess.Popen(
        [*EXE, "agent", "run", *args, *fleet.client_flags()], env=fleet.env,
        stdin=subprocess.PIPE if stdin is None else stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def feed_forever(pipe: object) -> threading.Thread:
    """Write into ``pipe`` until the reader is gone (it never sees EOF from us)."""

    def write() -> None:
        try:
            while True:
                pipe.write(b"z" * 65536)  # type: ignore[attr-defined]
        except (BrokenPipeError, ValueError, OSError):
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_100_mb_piped_into_a_remote_command_arrive_byte_exact_with_memory_bounded(three: Fleet) -> None:
    size = 100 * MiB
    procs = {p.name: p.pid for p in three.procs}
    baseline = {name: rss_kib(pid) for name, pid in procs.items()}
    cli = agent_run(three, "a1", "sha256sum")
    procs["cli"] = cli.pid
    peak = dict(baseline)
    sent = hashlib.sha256()
    chunks = random.Random(14)
    assert cli.stdin is not None
    for _ in range(size // MiB):
        chunk = chunks.randbytes(MiB)
        sent.update(chunk)
        cli.stdin.write(chunk)
        for name, pid in procs.items():
            peak[name] = max(peak.get(name, 0), rss_kib(pid))
    cli.stdin.close()
    cli.stdin = None  # closed: communicate() only reads
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err.decode()
    assert out == f"{sent.hexdigest()}  -\n".encode(), "the far side read exactly what was sent"
    for name in ("master", "agent-a1"):
        # Bounded, not zero: flow-control windows, a 1 MiB queue per hop, the allocator's slack
        # (20-40 MiB measured, the same for 300 MB); holding the input would take 100 MB.
        grew = peak[name] - baseline[name]
        assert grew < 60 * 1024, f"{name} grew by {grew} KiB while 100 MB went through it"
    assert peak["cli"] < 200 * 1024, f"the CLI peaked at {peak['cli']} KiB"


def test_a_script_on_stdin_binary_bytes_empty_input_and_no_stdin(three: Fleet) -> None:
    script = b"echo from the script\nuname -s\nexit 4\necho not reached\n"
    ran = three.cli("agent", "run", "a1", "sh -s", input=script)
    assert (ran.returncode, ran.stdout) == (4, b"from the script\nLinux\n"), ran.stderr.decode()

    every_byte = bytes(range(256)) * 64 + b"\r\n\x00\x1b[2J"
    echoed = three.cli("agent", "run", "a1", "cat", "--raw", input=every_byte)
    assert echoed.returncode == 0 and echoed.stdout == every_byte, "byte for byte, both ways"

    empty = three.cli("agent", "run", "a1", "wc -c", input=b"")
    assert (empty.returncode, empty.stdout) == (0, b"0\n")

    none = three.cli("agent", "run", "-n", "a1", "wc -c", input=b"not sent")
    assert (none.returncode, none.stdout) == (0, b"0\n"), "-n sends nothing, as ssh -n"


def test_a_fanout_sends_stdin_only_with_the_flag_and_then_all_of_it_to_every_agent(three: Fleet) -> None:
    payload = os.urandom(3 * MiB)
    digest = hashlib.sha256(payload).hexdigest()
    fanned = three.cli("agent", "run", "--stdin", "a*", "sha256sum", input=payload)
    assert fanned.returncode == 0, fanned.stderr.decode()
    lines = sorted(fanned.stdout.decode().splitlines())
    assert lines == [f"{name} | {digest}  -" for name in ("a1", "a2", "a3")]

    # Without --stdin an open stdin that never ends holds nothing up.
    idle = agent_run(three, "a*", "wc -c")
    out, err = _wait_without_closing(idle)
    assert idle.returncode == 0, err.decode()
    assert sorted(out.decode().splitlines()) == [f"{name} | 0" for name in ("a1", "a2", "a3")]


def _wait_without_closing(cli: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """The CLI's output once it exits, its stdin still open (as a script's idle stdin would be)."""
    assert cli.stdout is not None and cli.stderr is not None
    cli.wait(timeout=30)
    out, err = cli.stdout.read(), cli.stderr.read()
    if cli.stdin is not None:
        cli.stdin.close()
    return out, err


def test_stdin_over_the_cap_for_several_agents_is_refused_before_anything_runs(three: Fleet) -> None:
    before = len(runs(three))
    too_big = three.cli("agent", "run", "--stdin", "a*", "wc -c", input=b"x" * (64 * MiB + 1))
    assert too_big.returncode == 2
    assert too_big.stderr.decode().startswith("error: stdin is over 64 MiB"), too_big.stderr.decode()
    assert "nothing ran" in too_big.stderr.decode() and too_big.stdout == b""
    assert len(runs(three)) == before, "no run was recorded, none started"


def test_a_command_that_never_reads_stdin_ends_with_its_own_code_while_we_still_send(three: Fleet) -> None:
    cli = agent_run(three, "a1", "exit 7")
    assert cli.stdin is not None
    feed_forever(cli.stdin)
    out, err = _wait_without_closing(cli)
    assert cli.returncode == 7, err.decode()
    # Nor does a run wait for our EOF when it is over.
    quick = agent_run(three, "a1", "head -c 3")
    assert quick.stdin is not None
    quick.stdin.write(b"abcdef")
    quick.stdin.flush()
    out, err = _wait_without_closing(quick)
    assert (quick.returncode, out) == (0, b"abc"), err.decode()


def test_a_client_killed_mid_stdin_leaves_nothing_running(three: Fleet, tmp_path: Path) -> None:
    marker, received = tmp_path / "pid", tmp_path / "received"
    cli = agent_run(three, "a1", f"echo $$ > {marker}; exec cat > {received}")
    assert cli.stdin is not None
    cli.stdin.write(b"first part\n")
    cli.stdin.flush()
    wait_for(lambda: received.exists() and received.read_bytes() == b"first part\n", 15, "the bytes to arrive")
    remote = int(marker.read_text())
    cli.send_signal(signal.SIGKILL)
    cli.wait(timeout=15)
    wait_for(lambda: gone(remote), 15, "the remote command to end with its caller")
    wait_for(lambda: runs(three, "--limit", "1")[0]["status"] == "cancelled", 15, "the run to be recorded cancelled")


async def test_a_terminal_session_through_the_client_echoes_resizes_and_returns_its_exit_code(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    client = admin_client(fleet)
    try:
        session = client.interact(pb.RunRequest(
            target=pb.Target(names=["a1"]), pty=pb.Pty(term="xterm", size=pb.WindowSize(rows=30, cols=100)),
        ))
        screen = bytearray()
        finished: list[pb.RunInfo] = []

        async def typing() -> None:
            await session.send(b"echo $((6*7)); stty size\r")
            await wait_for_async(lambda: b"30 100" in screen)
            await session.resize(50, 132)
            await session.send(b"stty size; exit 3\r")

        typist = asyncio.create_task(typing())
        async with asyncio.timeout(30):
            async for event in session:
                if event.HasField("output"):
                    screen += event.output.data
                elif event.HasField("finished"):
                    finished.append(event.finished)
        typist.cancel()
        assert b"\r42\r\n" in screen, "typed input ran (its echo shows $((6*7)), its output 42)"
        assert b"30 100\r\n" in screen and b"50 132\r\n" in screen, "the size at start, then the new one"
        assert (finished[0].status, finished[0].exit_code, finished[0].kind) == (pb.RUN_FAILED, 3, pb.RUN_SHELL)
        listed = await client.list_runs(limit=1)
        assert listed[0].kind == pb.RUN_SHELL and listed[0].stdout_bytes > 0
        assert not [e async for e in client.stream_run(listed[0].run_id) if e.HasField("output")], \
            "a shell's screen is not kept in history"
    finally:
        await client.close()
    shown = json.loads(fleet.cli("runs", "list", "--json", *fleet.client_flags()).stdout)[0]
    assert (shown["kind"], shown["exit_code"]) == ("shell", 3)
    table = fleet.cli("runs", "list", *fleet.client_flags()).stdout.decode().splitlines()
    assert table[1].endswith("shell (login)"), table


async def test_a_terminal_session_ends_with_its_caller_or_a_cancel_and_leaves_no_shell(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    client = admin_client(fleet)
    try:
        for how in ("cancel the call", "runs cancel"):
            marker = tmp_path / how.replace(" ", "-")
            session = client.interact(pb.RunRequest(
                target=pb.Target(names=["a1"]), pty=pb.Pty(term="xterm", size=pb.WindowSize(rows=24, cols=80)),
            ))
            events = aiter(session)
            run_id = ""
            async with asyncio.timeout(30):
                while not run_id:
                    event = await anext(events)
                    run_id = event.run_id if event.HasField("started") else ""
                # A job in a group of its own, as an interactive shell makes it.
                await session.send(f"sleep 300 & echo $$ $! > {marker}\r".encode())
                await wait_for_async(lambda marker=marker: marker.exists() and len(marker.read_text().split()) == 2)
                pids = [int(p) for p in marker.read_text().split()]
                if how == "cancel the call":
                    session.cancel()
                    with pytest.raises(errors.CallCancelledError):
                        async for _ in events:
                            pass
                else:
                    assert await client.cancel(run_id) == [run_id]
                    async for _ in events:
                        pass
            for pid in pids:
                await wait_for_async(lambda pid=pid: gone(pid))
            info = await client.get_run(run_id)
            assert info.status == pb.RUN_CANCELLED, how
    finally:
        await client.close()


async def wait_for_async(condition: object, timeout: float = 15.0) -> None:
    from sloth_core.harness import wait_until

    await wait_until(condition, timeout)  # type: ignore[arg-type]


def test_a_terminal_session_needs_exactly_one_agent(three: Fleet) -> None:
    async def attempt() -> Exception | None:
        client = admin_client(three)
        try:
            session = client.interact(pb.RunRequest(target=pb.Target(names=["a*"]), pty=pb.Pty()))
            async for _ in session:
                pass
        except Exception as exc:
            return exc
        finally:
            await client.close()
        return None

    refused = asyncio.run(attempt())
    assert isinstance(refused, errors.ShellTargetError) and refused.exit_code == 2
    assert "matches 3" in str(refused)


async def test_a_sender_waiting_for_room_is_freed_when_the_run_ends(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    client = admin_client(fleet)
    try:
        session = client.interact(pb.RunRequest(target=pb.Target(names=["a1"]), command="exit 7", stdin=True))
        chunk = b"x" * 65536

        async def send_forever() -> None:
            while True:
                await session.send(chunk)  # returns at once, without sending, once the call is over
                await asyncio.sleep(0)

        sender = asyncio.create_task(send_forever())
        finished = [e.finished async for e in session if e.HasField("finished")]
        assert (finished[0].status, finished[0].exit_code) == (pb.RUN_FAILED, 7)
        for _ in range(20):
            await asyncio.sleep(0)  # let the sender run past its wait, if it was waiting
        assert not sender.done(), "sending after the end is a no-op, not an error"
        sender.cancel()
        await asyncio.wait_for(session.send(chunk), 1)
        await asyncio.wait_for(session.close_input(), 1)
    finally:
        await client.close()
