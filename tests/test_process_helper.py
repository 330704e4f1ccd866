"""The agent's process helper, in process: bursts, refusals and its own death."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sloth_core.agent import processes
from sloth_core.agent.executor import Execution
from sloth_core.proto import sloth_pb2 as pb

pytestmark = pytest.mark.timeout(60)


async def run(command: str) -> tuple[Execution, bytes]:
    execution = Execution(command, 0, {"SLOTH_AGENT": "t"})
    out = b""
    async for event in execution.events():
        if event.WhichOneof("kind") == "output":
            out += event.output.data
    return execution, out


async def test_a_burst_of_concurrent_runs_all_complete(helper: processes.ProcessHelper) -> None:
    # More requests than the helper's socket queue holds at once.
    results = await asyncio.gather(*(run(f"echo {i}") for i in range(300)))
    assert [out for _, out in results] == [f"{i}\n".encode() for i in range(300)]
    assert all(e.outcome is not None and e.outcome.status == pb.RUN_SUCCEEDED for e, _ in results)


async def test_a_command_too_long_to_start_fails_with_the_reason(helper: processes.ProcessHelper) -> None:
    execution, _ = await run("echo " + "x" * 4 * 1024 * 1024)
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_FAILED
    assert execution.outcome.error.startswith("cannot start bash:")
    _, out = await run("echo still-works")
    assert out == b"still-works\n"


async def test_a_killed_helper_fails_its_runs_and_the_next_run_gets_a_new_one(
    helper: processes.ProcessHelper,
) -> None:
    execution = Execution("echo started; sleep 300", 0, None)
    events = execution.events()
    async for event in events:
        if event.WhichOneof("kind") == "output":
            break
    assert helper._proc is not None
    os.kill(helper._proc.pid, signal.SIGKILL)
    async for _ in events:
        pass
    assert execution.outcome is not None and execution.outcome.status == pb.RUN_FAILED
    assert "process helper died" in execution.outcome.error
    os.killpg(execution.pid, signal.SIGKILL)  # no records here: nobody else will
    _, out = await run("echo again")
    assert out == b"again\n"


async def test_commands_inherit_only_stdin_stdout_and_stderr(helper: processes.ProcessHelper) -> None:
    # Not the helper's socket (a command could speak for the helper) nor any other descriptor.
    _, out = await run("ls /proc/$$/fd; true")  # `; true`: bash forks ls, $$ stays bash
    assert sorted(out.split()) == [b"0", b"1", b"2"]
