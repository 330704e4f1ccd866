"""The Agent gRPC service: executes what its master asks, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from sloth_core.agent.executor import KILL_GRACE_S, Execution
from sloth_core.escape import shortened
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc

log = logging.getLogger(__name__)


class AgentService(sloth_pb2_grpc.AgentServicer):
    def __init__(self, name: str, auth: Any, on_shutdown: Callable[[], None]) -> None:
        self._name = name
        self._auth = auth
        self._on_shutdown = on_shutdown
        self.runs: dict[str, Execution] = {}

    @property
    def running(self) -> int:
        return len(self.runs)

    async def Execute(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        await self._auth.require_master(context)
        if not request.command.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty command")
        if request.run_id in self.runs:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"run {request.run_id} is already running")
        # Commands can tell where and as what they run (like $SSH_CONNECTION).
        env = {"SLOTH_AGENT": self._name, "SLOTH_RUN_ID": request.run_id}
        execution = Execution(request.command, request.timeout_s, env)
        self.runs[request.run_id] = execution
        log.info("run %s: %s", request.run_id, shortened(request.command))
        events = execution.events()
        try:
            async for event in events:
                yield event
        finally:
            self.runs.pop(request.run_id, None)
            if execution.outcome is None:
                # The master hung up mid-run: kill the process group, and wait
                # for it, before this call is allowed to end.
                execution.cancel()
                with contextlib.suppress(Exception):
                    await events.aclose()
                log.info("run %s: the master went away; process group killed", request.run_id)
            else:
                log.info("run %s: %s", request.run_id, pb.RunStatus.Name(execution.outcome.status))

    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        await self._auth.require_master(context)
        execution = self.runs.get(request.run_id)
        if execution is not None:
            execution.cancel()
        return pb.CancelResponse(found=execution is not None)

    async def Shutdown(self, request: pb.ShutdownRequest, context: grpc.aio.ServicerContext) -> pb.ShutdownResponse:
        await self._auth.require_master(context)
        log.info("the master asked this agent to shut down")
        # Answer first; stop once the reply is on its way.
        asyncio.get_running_loop().call_later(0.1, self._on_shutdown)
        return pb.ShutdownResponse()

    async def cancel_all(self, timeout_s: float = 2 * KILL_GRACE_S + 1) -> None:
        """Kill every run and wait (bounded) for their calls to end.

        Bounded because a call can be stuck sending to a master whose reader
        stopped reading; the server's stop then cancels it, and its
        ``finally`` has already killed the process group.
        """
        for execution in list(self.runs.values()):
            execution.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.runs:
                    await asyncio.sleep(0.05)
