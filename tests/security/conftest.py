"""Fixtures: a running master (and a second, unrelated one), agent endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc.aio
import pytest_asyncio

from sloth_core import transport
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.transport import TLSConfig

from .support import FakeAgent, RunningMaster, start_master


@pytest_asyncio.fixture
async def master(tmp_path: Path) -> AsyncIterator[RunningMaster]:
    running = await start_master(tmp_path / "master")
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def other_master(tmp_path: Path) -> AsyncIterator[RunningMaster]:
    running = await start_master(tmp_path / "other-master")
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def agent_server() -> AsyncIterator[Callable[[TLSConfig], Awaitable[int]]]:
    """Start agents' Agent endpoints: ``port = await start(tls)``."""
    servers: list[grpc.aio.Server] = []

    async def start(tls: TLSConfig) -> int:
        server = transport.create_server()
        sloth_pb2_grpc.add_AgentServicer_to_server(FakeAgent(), server)
        port = transport.bind(server, "127.0.0.1:0", tls)
        await server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.stop(None)
