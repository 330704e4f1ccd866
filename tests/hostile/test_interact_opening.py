"""The opening of an `Interact` call (stdin and terminal runs): read before anything may refuse the call.

An in-process Master service on a real loopback port, with a caller that is
never an admin: whatever it sends first, it gets one clear refusal, never
INTERNAL, never a traceback in the master's log, and never a call held open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from sloth_core import errors, transport
from sloth_core.master import service
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc as rpc

pytestmark = pytest.mark.timeout(30)


class NoAdmins:
    """Every caller is refused as a non-admin."""

    async def require_admin(self, context: object) -> None:
        raise errors.PermissionDeniedError("only an admin may do this; the caller is agent:web-1")

    require_admin_or_peer = require_admin

    async def require_agent(self, context: object, name: str) -> None:
        raise errors.PermissionDeniedError("no")

    def ended_by_revocation(self) -> None:
        return None


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = transport.create_server()
    master = service.MasterService(
        None, None, None, None, NoAdmins(), clock=time.time, store_health=lambda: None  # type: ignore[arg-type]
    )
    rpc.add_MasterServicer_to_server(master, server)
    port = transport.bind(server, "127.0.0.1:0", None)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        await server.stop(None)


async def status_of(call: AsyncIterator[object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    return raised.value.code(), raised.value.details() or ""


async def test_a_well_formed_request_from_a_non_admin_is_refused_with_the_reason(channel: grpc.aio.Channel) -> None:
    async def opening() -> AsyncIterator[pb.InteractUp]:
        # As the CLI does: the request, then nothing until the master accepts the run.
        yield pb.InteractUp(request=pb.RunRequest(command="cat", stdin=True))
        await asyncio.Event().wait()

    for _ in range(50):  # the refusal used to cross the first write now and then and arrive as INTERNAL
        code, details = await status_of(rpc.MasterStub(channel).Interact(opening()))
        assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, "only an admin may do this; the caller is agent:web-1")


async def test_an_opening_that_does_not_decode_is_invalid_and_logs_no_traceback(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    raw = channel.stream_stream("/sloth.v1.Master/Interact", request_serializer=bytes, response_deserializer=bytes)

    async def garbage() -> AsyncIterator[bytes]:
        yield b"\xff\xff\xff\xff"

    with caplog.at_level(logging.WARNING):
        code, details = await status_of(raw(garbage(), timeout=10))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "the call's first message is not a valid request")
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_a_caller_that_sends_nothing_is_refused_in_time(
    channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "OPENING_MESSAGE_S", 0.5)
    silent = channel.stream_stream("/sloth.v1.Master/Interact", request_serializer=bytes, response_deserializer=bytes)
    started = time.monotonic()
    code, details = await status_of(silent(timeout=20))  # never writes, never closes its side
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "the call must start with its request; none came within 0.5 s"
    assert time.monotonic() - started < 10, "refused by the master, not by the caller's own deadline"
