"""Keeping the master informed: register, heartbeat, re-register, back off."""

from __future__ import annotations

import asyncio
import logging
import platform
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import grpc.aio

from sloth_core import __version__, errors
from sloth_core.client import map_rpc_error
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.security.names import MASTER_SERVER_NAME
from sloth_core.transport import TLSConfig, open_channel

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 3.0
# A plaintext agent whose master refuses plaintext this many times in a row
# stops: its own plaintext port must not stay open for a master that now
# requires TLS. (One refusal can be a connection cut mid-handshake.)
TLS_REFUSALS_FATAL = 3
CALL_TIMEOUT_S = 5.0


@dataclass
class AgentProfile:
    """What this agent tells the master about itself when it registers."""

    name: str
    address: str
    instance_id: str
    labels: dict[str, str] = field(default_factory=dict)


def dialable_address(master_host: str) -> str:
    """The local IP the master can reach us on: the one our route to it uses."""
    try:
        family = socket.AF_INET6 if ":" in master_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((master_host, 9))  # UDP connect sends nothing
            ip = probe.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    return ip


class Registrar:
    """Runs the register/heartbeat loop until cancelled."""

    def __init__(
        self,
        master: str,
        tls: TLSConfig | None,
        profile: AgentProfile,
        running: Callable[[], int],
    ) -> None:
        self._master = master
        self._insecure = tls is None
        self._profile = profile
        self._running = running
        self._channel = open_channel(master, tls, server_name=MASTER_SERVER_NAME)
        self._stub = sloth_pb2_grpc.MasterStub(self._channel)
        self.interval_s = 5.0
        self.registered = asyncio.Event()

    def _register_request(self) -> pb.RegisterRequest:
        profile = self._profile
        return pb.RegisterRequest(
            name=profile.name,
            address=profile.address,
            version=__version__,
            hostname=socket.gethostname(),
            os=f"{platform.system()} {platform.release()}",
            labels=profile.labels,
            instance_id=profile.instance_id,
        )

    async def register_once(self) -> None:
        """Register, raising a user-facing error for anything that will not heal by waiting."""
        try:
            reply = await self._stub.Register(self._register_request(), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self._master, secure=not self._insecure) from None
        self.interval_s = reply.heartbeat_interval_s or self.interval_s
        if not self.registered.is_set():
            log.info("registered with the master at %s as %s (%s)", self._master, self._profile.name, self._profile.address)
        self.registered.set()

    async def run(self, already_said: str = "") -> None:
        """Heartbeat until cancelled; ``already_said`` is a complaint the caller already logged."""
        backoff = BACKOFF_START_S
        need_register = not self.registered.is_set()
        complained = already_said
        refusals = 0
        if not need_register:
            await asyncio.sleep(self.interval_s * random.uniform(0.8, 1.0))
        while True:
            try:
                if need_register:
                    await self.register_once()
                    need_register = False
                else:
                    await self._stub.Heartbeat(
                        pb.HeartbeatRequest(
                            name=self._profile.name,
                            instance_id=self._profile.instance_id,
                            running=self._running(),
                        ),
                        timeout=CALL_TIMEOUT_S,
                    )
                backoff = BACKOFF_START_S
                refusals = 0
                if complained:
                    log.info("the master at %s answers again", self._master)
                    complained = ""
                await asyncio.sleep(self.interval_s * random.uniform(0.8, 1.0))
                continue
            except grpc.aio.AioRpcError as exc:
                error = map_rpc_error(exc, self._master, secure=not self._insecure)
                if isinstance(error, errors.NotFoundError):
                    # The master lost or deleted us: register again at once.
                    need_register = True
                    continue
            except errors.SlothError as exc:
                error = exc
                need_register = True
            refusals = refusals + 1 if isinstance(error, errors.TLSRefusedError) else 0
            if self._insecure and refusals >= TLS_REFUSALS_FATAL:
                raise errors.TLSRefusedError(self.explain(error))
            complained = self._complain(error, complained)
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def explain(self, exc: errors.SlothError) -> str:
        """What a refused call means for this agent (it has no --credentials)."""
        if not isinstance(exc, errors.CredentialsError):
            return str(exc)
        if self._insecure:
            return (
                f"the master at {self._master} refused our plaintext connection: it requires TLS; "
                "start this agent without --insecure"
            )
        return (
            f"the master at {self._master} refused our certificate; "
            "re-join with --token (get one with `sloth-runner master token`)"
        )

    def _complain(self, exc: errors.SlothError, last: str) -> str:
        message = self.explain(exc)
        if message != last:
            log.warning("%s; retrying", message)
        return message

    async def leave(self, timeout_s: float = 1.0) -> None:
        """Tell the master we are stopping on purpose (best effort)."""
        if not self.registered.is_set():
            return
        profile = self._profile
        try:
            await self._stub.Leave(pb.LeaveRequest(name=profile.name, instance_id=profile.instance_id), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.info("could not tell the master we are leaving: %s", exc.details() or exc.code().name)

    async def close(self) -> None:
        await self._channel.close(grace=None)
