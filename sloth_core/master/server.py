"""Assembling and running a master process: storage, registry, servers."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from sloth_core import __version__, transport
from sloth_core.bounds import Limits
from sloth_core.endpoint import MasterEndpoint, remove_endpoint, write_endpoint
from sloth_core.master.admission import Admission
from sloth_core.master.config import MasterConfig
from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import EventBus
from sloth_core.master.history import RunHistory
from sloth_core.master.input_relay import InputRelay
from sloth_core.master.memory import trim_when_idle
from sloth_core.master.registry import Registry
from sloth_core.master.service import MasterService
from sloth_core.master.session_service import AgentSessionService
from sloth_core.master.sessions import SessionHub
from sloth_core.master.watch_budget import WatchBudget
from sloth_core.names import join_host_port
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.proto import sloth_pb2_grpc
from sloth_core.storage import STORE_ENV, RunRecord, open_store

log = logging.getLogger(__name__)

class Master:
    """A running master; :meth:`start` binds, :meth:`stop` shuts down."""

    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.port = 0
        self.join_port = 0
        self.storage = open_store(config.store, config.data_dir, config.history_queue)
        self.bus = EventBus(WatchBudget(config.watch_budget_bytes))
        self.storage.on_health_change(lambda health: self.bus.store(health.to_proto()))
        self.hub = SessionHub()
        self.inputs = InputRelay()  # callers' input (stdin, terminals) on its way to runs
        self.registry = Registry(
            self.storage, self.bus, heartbeat_interval_s=config.heartbeat_interval_s,
            # A frozen agent's session is cut: its runs are lost now, and when
            # it wakes it finds its runs hung up (and kills them) and says hello again.
            on_unresponsive=lambda name: self.hub.drop_agent(name, "it stopped answering"),
        )
        self.pki: Any = None
        self.dispatcher: Dispatcher | None = None
        self._server: Any = None
        self._join_server: Any = None
        self._signer: Any = None  # signs joins in a child process (security/signer.py)
        self._sweeper: asyncio.Task[None] | None = None
        #: Several masters (a PostgreSQL store): this master's lease and the cluster sweeper.
        self.lease: Any = None
        self._lease_task: asyncio.Task[None] | None = None
        self.feed: Any = None
        self.master_id = ""
        self._trimmer: asyncio.Task[None] | None = None
        self._revocations: asyncio.Task[None] | None = None

    @property
    def _store_url(self) -> str:
        return self.config.store or os.environ.get(STORE_ENV, "")

    @property
    def is_clustered(self) -> bool:
        """Whether this master shares its store with others (PostgreSQL)."""
        return self._store_url.startswith(("postgresql://", "postgres://"))

    @property
    def address(self) -> str:
        """Where local clients reach this master (recorded in ``master.json``)."""
        host = self.config.bind
        if host in transport.WILDCARDS:
            host = "127.0.0.1"
        return join_host_port(host, self.port)

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _warn_if_shared(cfg.data_dir)
        await self.storage.open()
        if self.is_clustered:
            from sloth_core.master.lease import new_master_id

            # Other masters drive runs in this store: only an expired lease makes a run lost (lease.py).
            self.master_id = new_master_id()
            self.registry.clustered = True
        else:
            lost = await self.storage.mark_unfinished(
                pb.RUN_LOST, "the master stopped while this run was in flight", time.time()
            )
            if lost:
                log.warning("%d run(s) were in flight when the master stopped; recorded as lost", lost)
        await self.registry.load()

        from sloth_core.security.identity import Authorizer

        tls: transport.TLSConfig | None = None
        auth = Authorizer()  # plaintext callers pass: only with --insecure
        on_agent_deleted = None
        if not cfg.insecure:
            from sloth_core.security import MasterPKI
            from sloth_core.security.signer import Signer

            # Certificates are made in a child (security/signer.py): this process never holds cryptography.
            self._signer = Signer()
            if not MasterPKI.exists(cfg.data_dir):
                await self._signer.create_pki(cfg.data_dir)  # its child then signs the first joins too
                log.info("created a new certificate authority in %s", cfg.data_dir / "pki")
            # With a server store the cluster's tokens and ledger live there, for every master.
            self.pki = await asyncio.to_thread(
                MasterPKI.load_or_create, cfg.data_dir, self._store_url if self.is_clustered else ""
            )
            await asyncio.to_thread(self.pki.claim_store)  # one cluster per store
            self._signer.use(self.pki.signing_pair)
            tls = self.pki.master_tls
            auth = Authorizer(self.pki)
            on_agent_deleted = self.pki.revoke_agent

        link: Any = self.hub
        if self.is_clustered:
            from sloth_core.master.relay import ClusterLink

            # Agents with a session on another master are reached through it.
            link = self.cluster_link = ClusterLink(self.hub, tls)
        self.dispatcher = Dispatcher(
            self.registry,
            self.storage,
            self.bus,
            link,
            output_cap=cfg.output_cap,
            runs_per_agent=cfg.runs_per_agent,
            on_agent_deleted=on_agent_deleted,
            driver=self.master_id,
            inputs=self.inputs,
        )
        limits = Limits(max_command_bytes=cfg.max_command_bytes)
        self.history = RunHistory(self.dispatcher, self.storage)
        service = MasterService(
            self.registry, self.dispatcher, self.history, self.bus, auth,
            clock=time.time, store_health=self.storage.health,
            limits=limits,
            admission=Admission(cfg.max_calls),
        )
        self._server = transport.create_server()
        sloth_pb2_grpc.add_MasterServicer_to_server(service, self._server)
        sloth_pb2_grpc.add_AgentSessionServicer_to_server(
            AgentSessionService(self.registry, self.hub, auth, limits=limits, inputs=self.inputs), self._server
        )
        if self.is_clustered:
            from sloth_core.master.relay import relay_handler

            self._server.add_generic_rpc_handlers((relay_handler(self.hub, self.registry, auth, self.inputs, self.cluster_link),))
        await _add_health_and_reflection(self._server, ["sloth.v1.Master", "sloth.v1.AgentSession"])
        self.port = transport.bind(self._server, join_host_port(cfg.bind, cfg.port), tls)

        if self.pki is not None:
            from sloth_core.security.join import JoinServicer

            self._join_server = transport.create_server()
            sloth_pb2_grpc.add_JoinServicer_to_server(
                JoinServicer(self.pki, name_in_use=self._name_in_use, sign=self._signer.sign_agent), self._join_server
            )
            from sloth_core.security.cluster_join import cluster_join_handler

            self._join_server.add_generic_rpc_handlers((cluster_join_handler(self.pki),))
            join_port = cfg.join_port if cfg.join_port is not None else (cfg.port + 1 if cfg.port else 0)
            self.join_port = transport.bind_server_tls_only(
                self._join_server,
                join_host_port(cfg.bind, join_port),
                self.pki.join_key_pem,
                self.pki.join_cert_pem,
            )
            self.pki.set_join_port(self.join_port)
            await self._join_server.start()

        if self.is_clustered:
            from sloth_core.master.lease import MasterLease

            self.lease = MasterLease(
                self._store_url, self.storage, self.registry, master_id=self.master_id,
                address=await asyncio.to_thread(advertised_address, cfg, self.port, self._store_url),
                identity=self.pki.identity_label if self.pki is not None else "insecure (no TLS)",
                on_lost=self._announce_lost,
            )
            await self.lease.start()  # before serving: our runs must never look orphaned
            self._lease_task = asyncio.create_task(self.lease.run(), name="lease")
            self.cluster_link.lease = self.lease
            from sloth_core.master.cluster_feed import ClusterFeed
            from sloth_core.master.peers import Peers

            # Cancel and follow of runs another master drives go to that master.
            self.history.peers = Peers(self.lease, self.storage, tls)

            from sloth_core.master.remote_runs import RemoteRuns

            # Agents' changes and runs' starts and ends, between masters; the
            # runs in flight elsewhere for Watch snapshots here.
            self.history.elsewhere = elsewhere = RemoteRuns(self.storage, self.master_id)
            self.feed = ClusterFeed(
                self._store_url, self.master_id, self.bus, on_agent=self._remote_agent_change, on_run=elsewhere.heard,
            )
            await self.feed.start()
        await self._server.start()
        self._sweeper = asyncio.create_task(self.registry.run_sweeper(), name="sweeper")
        dispatcher = self.dispatcher
        self._trimmer = asyncio.create_task(
            trim_when_idle(lambda: dispatcher.busy, lambda: dispatcher.finished_runs), name="trim"
        )
        self._revocations = asyncio.create_task(auth.end_revoked_calls(), name="revocations")
        self._write_endpoint()

    def _remote_agent_change(self, event: pb.AgentEvent) -> None:
        if event.type == pb.AGENT_DELETED and self.pki is not None:
            # Deleted on another master, which revoked it first: see that now, not at the next refresh.
            self.pki.refresh_shared()
        self.registry.apply_remote(event)

    def _announce_lost(self, records: list[RunRecord]) -> None:
        """Runs of a master that died, marked lost by our sweep: every console sees them end."""
        from sloth_core.master.history import run_info

        for rec in records:
            event = pb.RunEvent(job_id=rec.job_id, run_id=rec.run_id, agent=rec.agent, finished=run_info(rec))
            if self.history.elsewhere is not None:
                self.history.elsewhere.heard(event)
            self.bus.run(event)

    def _name_in_use(self, name: str) -> bool:
        rec = self.registry.get(name)
        return rec is not None and rec.status == pb.AGENT_ONLINE

    def _write_endpoint(self) -> None:
        write_endpoint(
            self.config.data_dir,
            MasterEndpoint(
                pid=os.getpid(),
                address=self.address,
                port=self.port,
                join_port=self.join_port,
                insecure=self.config.insecure,
                version=__version__,
                started_at=time.time(),
                log_file=self.config.log_file,
            ),
        )

    async def stop(self, grace: float = 2.0) -> None:
        for task in (self._sweeper, self._trimmer, self._revocations, self._lease_task):
            if task is not None:
                task.cancel()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        for server in (self._join_server, self._server):
            if server is not None:
                await server.stop(grace)
        if self._signer is not None:
            await self._signer.close()
        self.registry.sweep()  # flush last_seen
        await self.storage.close()
        if self.feed is not None:
            await self.feed.close()
        if self.lease is not None:
            await self.lease.close()
        remove_endpoint(self.config.data_dir)


def advertised_address(cfg: MasterConfig, port: int, store_url: str) -> str:
    """Where the other masters of a cluster reach this one (they relay runs, cancels and follows to it).

    ``--advertise``, else the address it listens on, else (a wildcard bind) the
    address of this machine on its route to the store's host: every master
    reaches the store, so the others can most likely reach that address too.
    A store on this machine (loopback, a Unix socket) means a cluster on it.
    """
    from urllib.parse import urlsplit

    from sloth_core.names import split_host_port

    if cfg.advertise:
        return join_host_port(*split_host_port(cfg.advertise, default_port=port, what="--advertise address"))
    if cfg.bind not in transport.WILDCARDS:
        return join_host_port(cfg.bind.strip("[]"), port)
    store_host = urlsplit(store_url).hostname or "127.0.0.1"
    return join_host_port(transport.dialable_address(store_host), port)


def _warn_if_shared(data_dir: Path) -> None:
    """The data dir holds every command and its output (and the CA's keys): say so if others can read it."""
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "the data dir %s is open to other users (mode %04o), and it holds every command, its output "
            "and the master's keys: run `chmod 700 %s`", data_dir, mode, data_dir,
        )


async def _add_health_and_reflection(server: Any, services: list[str]) -> None:
    """Health and reflection make `grpcurl` and load balancers work (required dependencies)."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ["", *services]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    names = [pb.DESCRIPTOR.services_by_name[s.split(".")[-1]].full_name for s in services]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
