"""What the trust tests share: credentials on disk, raw calls, one-line errors."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio

from sloth_core.client import MASTER_SERVER_NAME
from sloth_core.proto import sloth_pb2_grpc as rpc
from sloth_core.transport import TLSConfig, open_channel
from tests.fleet import Fleet

RPC_TIMEOUT_S = 10.0
Status = tuple[grpc.StatusCode, str]


async def master_status(
    address: str, tls: TLSConfig, call: Callable[[rpc.MasterStub], Awaitable[object]]
) -> Status:
    async with open_channel(address, tls, server_name=MASTER_SERVER_NAME) as channel:
        try:
            await call(rpc.MasterStub(channel))
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


def one_error(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """A command failed with ``code`` and one `error:` line, no traceback."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode == code, (result.returncode, result.stdout[:2000], err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    if code == 2:  # a usage error also shows the command's usage lines first
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def token(fleet: Fleet, *args: str) -> str:
    result = fleet.cli("master", "token", *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


async def hello_status(address: str, tls: TLSConfig, hello: object) -> Status:
    """Open an agent session saying ``hello`` (a RegisterRequest); how the master answered."""
    from sloth_core.proto import sloth_pb2 as pb

    async with open_channel(address, tls, server_name=MASTER_SERVER_NAME) as channel:
        call = rpc.AgentSessionStub(channel).Connect(timeout=RPC_TIMEOUT_S)
        try:
            await call.write(pb.AgentUp(hello=hello))
            reply = await call.read()
            if reply is grpc.aio.EOF:
                await call
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        call.cancel()
        return grpc.StatusCode.OK, ""
