"""The agent's runs in flight: start one, cancel one, cancel them all.

A run lives exactly as long as the master's ``Execute`` call that started
it: when the call ends before the command does (the master hung up), the
command's whole process group is killed, and waited for, before the call
may end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from sloth_core import errors
from sloth_core.agent.executor import KILL_GRACE_S, Execution, InputSource
from sloth_core.escape import shortened
from sloth_core.names import SECRET_PREFIX
from sloth_core.proto import sloth_pb2 as pb

log = logging.getLogger(__name__)


class RunTable:
    """The runs this agent executes, by run id."""

    def __init__(self, agent_name: str) -> None:
        self._agent_name = agent_name
        self._runs: dict[str, Execution] = {}

    @property
    def running(self) -> int:
        return len(self._runs)

    def start_request(
        self, request: pb.ExecuteRequest, inputs: InputSource | None = None
    ) -> AsyncGenerator[pb.ExecuteEvent, None]:
        """:meth:`start` for what the master sent: the command, its timeout, --env, --cwd, stdin or a terminal.

        ``inputs`` opens the caller's input for the run (stdin or a terminal); without it stdin is closed.
        """
        return self.start(
            request.run_id, request.command, request.timeout_s, env=dict(request.env), cwd=request.cwd,
            stdin=request.stdin, pty=request.pty if request.HasField("pty") else None, inputs=inputs,
        )

    def start(
        self,
        run_id: str,
        command: str,
        timeout_s: float,
        *,
        env: dict[str, str] | None = None,
        cwd: str = "",
        stdin: bool = False,
        pty: pb.Pty | None = None,
        inputs: InputSource | None = None,
    ) -> AsyncGenerator[pb.ExecuteEvent, None]:
        """Start ``command`` as run ``run_id``; its events, ending with the exit.

        Raises :class:`~sloth_core.errors.UsageError` for an empty command
        (under a terminal, empty means a login shell) and
        :class:`~sloth_core.errors.RunExistsError` for a run id in flight.
        """
        if not command.strip() and pty is None:
            raise errors.UsageError("empty command")
        if "\x00" in command:  # the master refuses these; bash could not run one anyway
            raise errors.InvalidArgumentError("the command holds a NUL byte, which bash cannot run")
        if run_id in self._runs:
            raise errors.RunExistsError(f"run {run_id} is already running")
        # Commands can tell where and as what they run (like $SSH_CONNECTION).
        # The master refuses SLOTH_RUNNER_* in --env; an agent does not rely on it.
        env = {k: v for k, v in (env or {}).items() if not k.startswith(SECRET_PREFIX)}
        env.update(SLOTH_AGENT=self._agent_name, SLOTH_RUN_ID=run_id)
        execution = Execution(
            command, timeout_s, env, cwd=cwd, where=self._agent_name, stdin=stdin, pty=pty, inputs=inputs
        )
        self._runs[run_id] = execution
        if pty is not None:
            log.info("run %s: a terminal session: %s", run_id, shortened(command) or "login shell")
        else:
            log.info("run %s: %s", run_id, shortened(command))
        return self._events(run_id, execution)

    async def _events(self, run_id: str, execution: Execution) -> AsyncGenerator[pb.ExecuteEvent, None]:
        events = execution.events()
        try:
            async for event in events:
                yield event
        finally:
            self._runs.pop(run_id, None)
            if execution.outcome is None:
                # The master hung up mid-run: kill the process group, and wait
                # for it, before this call is allowed to end.
                execution.cancel()
                with contextlib.suppress(Exception):
                    await events.aclose()
                log.info("run %s: the master went away; process group killed", run_id)
            else:
                log.info("run %s: %s", run_id, pb.RunStatus.Name(execution.outcome.status))

    def cancel(self, run_id: str) -> bool:
        """Kill run ``run_id`` (its exit still reaches the master); False if unknown."""
        execution = self._runs.get(run_id)
        if execution is not None:
            execution.cancel()
        return execution is not None

    async def cancel_all(self, timeout_s: float = 2 * KILL_GRACE_S + 1) -> None:
        """Kill every run and wait (bounded) for their calls to end.

        Bounded because a call can be stuck sending to a master whose reader
        stopped reading; the server's stop then cancels it, and its
        ``finally`` has already killed the process group.
        """
        for execution in list(self._runs.values()):
            execution.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._runs:
                    await asyncio.sleep(0.05)
