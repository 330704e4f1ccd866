"""Assembling and running an agent process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sloth_core import errors, transport
from sloth_core.agent import processes
from sloth_core.agent.runs import RunTable
from sloth_core.agent.service import AgentService
from sloth_core.agent.session import AgentProfile, MasterSession
from sloth_core.names import DEFAULT_AGENT_PORT, DEFAULT_MASTER_PORT, TOKEN_ENV, join_host_port, split_host_port
from sloth_core.proto import sloth_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    name: str
    master: str
    data_dir: Path
    # None: no inbound port at all (the agent dials out to its master). A
    # port (or a bind address) also serves the Agent service there, for
    # direct callers with the master's identity.
    port: int | None = None
    bind_address: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    insecure: bool = False
    token: str | None = None
    master_data_dir: Path | None = None  # where a local master keeps its token
    facts: bool = True  # report load, memory, disk... (--no-facts)
    facts_interval_s: float = 15.0  # at most this often for load, memory, disk
    facts_proc: str = "/proc"


def explicit_token(config: AgentConfig) -> str | None:
    return config.token or os.environ.get(TOKEN_ENV)


async def agent_tls(config: AgentConfig, *, rejoin: bool = False) -> transport.TLSConfig | None:
    """This agent's certificate: stored from an earlier join, else join now.

    ``rejoin`` ignores the stored certificate (the master revoked it) and
    joins with the token given explicitly.
    """
    if config.insecure:
        return None
    from sloth_core import paths
    from sloth_core.security import join

    tls = None if rejoin else join.load_agent_tls(config.data_dir)
    if tls is not None:
        return tls
    token = explicit_token(config)
    if not token:
        token = join.find_local_token(paths.master_data_dir(config.master_data_dir))
    if not token:
        raise errors.CredentialsError(
            "this agent has no certificate yet: pass --token TOKEN "
            "(print one with `sloth-runner master token` on the master's machine)"
        )
    from sloth_core.agent.joining import join_once
    from sloth_core.master_dns import MasterList

    masters = MasterList(config.master)
    await masters.look_up()
    for index, master in enumerate(masters.addresses):
        log.info("joining the master at %s", masters.label(master))
        try:
            await join_once(master, token, config.name, config.data_dir)
            break
        except errors.MasterUnreachableError as exc:
            if index == len(masters.addresses) - 1:
                raise
            log.warning("%s; trying the next master", exc)
    tls = join.load_agent_tls(config.data_dir)
    if tls is None:
        raise errors.CredentialsError(f"joining stored no certificate in {config.data_dir}")
    return tls


class Agent:
    """An agent: it dials out to its master and keeps one session open.

    With --port/--bind-address it also listens, but only once the master has
    accepted it in the configured mode: an agent started with --insecure
    against a TLS master (or with a certificate the master refuses) exits
    with the reason instead of leaving a port open that runs commands for
    whoever connects.
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.port = 0
        self.address = ""
        self.stopping = asyncio.Event()
        self.fatal: errors.SlothError | None = None  # why the agent stopped by itself
        self._tls: transport.TLSConfig | None = None
        self._server: Any = None
        self.service: AgentService | None = None
        self.runs = RunTable(config.name)
        self.session: MasterSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._holds_helper = False

    @property
    def listens(self) -> bool:
        return self.config.port is not None or bool(self.config.bind_address)

    async def start(self, *, rejoin: bool = False) -> None:
        cfg = self.config
        tls = self._tls = await agent_tls(cfg, rejoin=rejoin)
        # Commands are started by a helper that kills them all if this process
        # dies; starting it first kills what an earlier instance left behind.
        await processes.start_shared(cfg.data_dir / "processes")
        self._holds_helper = True
        if self.listens:
            from sloth_core.security.identity import Authorizer

            # No revocation list here: the agent only ever admits its master.
            self.service = AgentService(self.runs, Authorizer(), on_shutdown=self.stopping.set)
            bind_host = cfg.bind_address or "0.0.0.0"
            # The port is chosen (and checked free) now, but listened on only
            # once the master has accepted us.
            self.port = transport.probe_port(bind_host, DEFAULT_AGENT_PORT if cfg.port is None else cfg.port)
            master_host, _ = split_host_port(cfg.master.split(",")[0], default_port=DEFAULT_MASTER_PORT, what="master address")
            host = cfg.bind_address if cfg.bind_address not in transport.WILDCARDS else transport.dialable_address(master_host)
            self.address = join_host_port(host, self.port)

        self.session = MasterSession(
            cfg.master,
            tls,
            AgentProfile(cfg.name, self.address, secrets.token_hex(8), dict(cfg.labels),
                         facts=cfg.facts, facts_interval_s=cfg.facts_interval_s, facts_proc=cfg.facts_proc),
            self.runs,
            on_shutdown=self.stopping.set,
        )
        # The first hello decides whether we may start at all: a name held by
        # another online agent, a refused certificate or a master in another
        # mode (TLS vs --insecure) are fatal.
        said = ""  # what we already told the operator, so the retry loop does not repeat it
        try:
            await self.session.register_once()
        except errors.PermissionDeniedError as exc:
            await self.stop()
            if rejoin or tls is None or not isinstance(exc, errors.CertificateRevokedError) or not explicit_token(cfg):
                raise
            log.warning("%s; joining again with the token given", exc)
            self._server = self.service = self.session = None
            await self.start(rejoin=True)
            return
        except errors.CredentialsError as exc:
            message = self.session.explain(exc)
            await self.stop()
            raise type(exc)(message) from None
        except (errors.NameTakenError, errors.UsageError):
            await self.stop()
            raise
        except errors.SlothError as exc:
            said = self.session.explain(exc)
            log.warning("%s; will keep trying (not accepting commands until registered)", said)
        if self.listens:
            if self.session.registered.is_set():
                await self._serve()
            else:
                self._serve_task = asyncio.create_task(self._serve_once_registered(), name="serve")
        self._loop_task = asyncio.create_task(self.session.run(already_said=said), name="session")
        self._loop_task.add_done_callback(self._session_ended)

    async def _serve(self) -> None:
        """Also serve the Agent service on --port/--bind-address (the seed's direct mode)."""
        cfg = self.config
        self._server = transport.create_server()
        sloth_pb2_grpc.add_AgentServicer_to_server(self.service, self._server)
        bind_host = cfg.bind_address or "0.0.0.0"
        transport.bind(self._server, join_host_port(bind_host, self.port), self._tls)
        await self._server.start()
        log.info("also listening on %s", self.address)

    async def _serve_once_registered(self) -> None:
        assert self.session is not None
        await self.session.registered.wait()
        try:
            await self._serve()
        except errors.SlothError as exc:
            self._stop_for(exc)

    def _session_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, errors.SlothError):
            self._stop_for(exc)
        elif exc is not None:  # a bug: without its session the master would call us offline
            log.error("the session loop failed", exc_info=exc)
            self._stop_for(errors.SlothError(f"internal error in the session loop: {exc!r}"))

    def _stop_for(self, exc: errors.SlothError) -> None:
        log.error("%s; stopping", exc)
        self.fatal = exc
        self.stopping.set()

    async def stop(self, grace: float = 1.0) -> None:
        if self._serve_task is not None:
            self._serve_task.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            if self.session is not None:
                await self.session.leave()
        await self.runs.cancel_all()
        if self._holds_helper:
            self._holds_helper = False
            await processes.close_shared()
        if self._server is not None:
            await self._server.stop(grace)
        if self.session is not None:
            await self.session.close()
