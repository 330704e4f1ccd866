"""Every gRPC channel and server of sloth-runner is built here.

Keeping it in one module means transport security, keepalive and message
limits change in one place. ``tls=None`` means plaintext, which only the
explicit ``--insecure`` paths ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sloth_core.errors import PortInUseError

if TYPE_CHECKING:
    import grpc
    import grpc.aio

# Chunks are at most 64 KiB; the limit leaves room for large history replies
# (ListRuns, Watch snapshots of big fleets) without allowing unbounded ones.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Keepalive bounds dead-peer detection: grpcio only honours
# http2.ping_timeout_ms for the ping deadline (keepalive_timeout_ms alone did
# not catch a frozen peer for ~60 s).
#
# Clients (CLI, console) ping every 2 s while a call is open and give the
# master 10 s to answer: a frozen master is noticed within ~12 s (a killed one
# at once: its sockets close). With 2 s to answer, the caller of a
# 10,000-agent job on a loaded machine took its master for dead. Servers ping every 30 s with a 20 s deadline: every
# agent holds its session open all the time, so this is what notices an idle
# agent's host that vanished without closing its socket. A frozen agent with
# runs in flight is the registry's to judge, by its busy beats (see
# registry.py): at 5 s with a 5 s deadline, 10,000 sessions were 2,000 pings a
# second (most of an idle master's CPU), and under a 10,000-agent job grpc fell
# behind reading the answers and ended 297 healthy sessions for "ping timeout".
_CLIENT_KEEPALIVE_MS = 2_000
_CLIENT_PING_TIMEOUT_MS = 10_000
_SERVER_KEEPALIVE_MS = 30_000
_SERVER_PING_TIMEOUT_MS = 20_000
# The agent's side of its session pings rarely: the master's pings keep the
# connection honest; these only notice a master host that vanished.
_AGENT_KEEPALIVE_MS = 60_000
_AGENT_PING_TIMEOUT_MS = 20_000


def _keepalive(every_ms: int, timeout_ms: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.keepalive_time_ms", every_ms),
        ("grpc.keepalive_timeout_ms", timeout_ms),
        ("grpc.http2.ping_timeout_ms", timeout_ms),
    ]


_COMMON_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Ping only while calls are open: that is when a dead peer matters (a run
    # in flight, a Watch).
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
]

SERVER_OPTIONS: list[tuple[str, Any]] = [
    *_COMMON_OPTIONS,
    *_keepalive(_SERVER_KEEPALIVE_MS, _SERVER_PING_TIMEOUT_MS),
    # Off so that a second master on a taken port fails instead of silently
    # sharing it.
    ("grpc.so_reuseport", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1_000),
    ("grpc.max_concurrent_streams", 10_000),
    # grpc core holds calls that arrived but that the application has not
    # picked up yet, and grpc.aio picks them up one at a time. Past 1,000
    # such calls (a random share up to 3,000) it cancelled them, and after
    # 30 s it cancels any: a burst of 2,000 Runs met a bare CANCELLED, which
    # nobody had asked for. Calls now wait their turn; the master sheds load
    # itself, with a "master busy" the client retries (master/admission.py).
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 200_000),
    ("grpc.server_max_unrequested_time_in_server", 600),
    # No bandwidth-delay probes: each message that arrives (an idle agent's
    # beat) made the master send a PING and wake for its ACK. Off, grpc's
    # threads spent 45 % less CPU on an idle 300-agent fleet and jobs ran
    # faster; streams keep the default 64 KiB window, which grpc reopens for
    # each message (a 64 KiB chunk) the master reads.
    ("grpc.http2.bdp_probe", 0),
]

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    *_COMMON_OPTIONS,
    *_keepalive(_CLIENT_KEEPALIVE_MS, _CLIENT_PING_TIMEOUT_MS),
    # grpc's default reconnect backoff grows to minutes; an agent waiting for
    # a restarted master should be back within a few seconds.
    # (Not min_reconnect_backoff_ms: grpc also uses it as the connect
    # timeout, and 1,000 TLS handshakes at once need more than 500 ms.)
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.enable_retries", 0),
]

# An agent's session to its master (see CHANNEL_OPTIONS for the rest).
AGENT_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    *[o for o in CHANNEL_OPTIONS if not o[0].startswith(("grpc.keepalive_t", "grpc.http2.ping_timeout"))],
    *_keepalive(_AGENT_KEEPALIVE_MS, _AGENT_PING_TIMEOUT_MS),
]


@dataclass(frozen=True)
class TLSConfig:
    """PEM material for one party's mutual-TLS identity."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    import grpc

    return grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)],
        root_certificates=tls.ca_pem,
        require_client_auth=True,
    )


def create_server(*, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Server:
    """A grpc.aio server with the project's options; add ports with :func:`bind`."""
    import grpc.aio

    from sloth_core.undecodable import UndecodableRequests

    return grpc.aio.server(options=[*SERVER_OPTIONS, *(options or [])], interceptors=[UndecodableRequests()])


def bind(server: grpc.aio.Server, address: str, tls: TLSConfig | None) -> int:
    """Bind ``address`` (host:port, port 0 for ephemeral) and return the port.

    With ``tls`` the port requires a client certificate from the same CA.
    Raises :class:`~sloth_core.errors.PortInUseError` when grpc cannot bind.
    """
    if tls is None:
        return _add_port(address, lambda: server.add_insecure_port(address))
    return _add_port(address, lambda: server.add_secure_port(address, _server_credentials(tls)))


def probe_port(host: str, port: int) -> int:
    """Check that ``host:port`` (port 0: any free one) can be bound, without listening; return the port.

    For a server that must not accept connections before it is allowed to
    serve: grpc listens as soon as a port is added. The port is free again on
    return, so :func:`bind` may still lose a race for it.
    """
    import socket

    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does
            probe.bind(sockaddr)
            return int(probe.getsockname()[1])
    except OSError as exc:
        raise PortInUseError(f"cannot listen on {host}:{port}: address in use or unavailable") from exc


#: Bind addresses that mean "every interface": not an address anyone can dial.
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def dialable_address(peer_host: str) -> str:
    """The local IP ``peer_host`` can reach us on: the one our route to it uses (127.0.0.1 if none)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_host, 9))  # UDP connect sends nothing
            ip = probe.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    return str(ip)


def bind_server_tls_only(
    server: grpc.aio.Server, address: str, key_pem: bytes, cert_pem: bytes
) -> int:
    """Bind a TLS port that does not ask for client certificates (joining)."""
    import grpc

    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], require_client_auth=False)
    return _add_port(address, lambda: server.add_secure_port(address, creds))


def _add_port(address: str, add: Callable[[], int]) -> int:
    # grpcio raises RuntimeError on some bind failures and returns 0 on others.
    try:
        port = add()
    except RuntimeError as exc:
        raise PortInUseError(f"cannot listen on {address}: address in use or unavailable") from exc
    if port == 0:
        raise PortInUseError(f"cannot listen on {address}: address in use or unavailable")
    return port


def open_channel(
    target: str,
    tls: TLSConfig | None,
    *,
    server_name: str | None = None,
    root_pem: bytes | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``target``.

    ``server_name`` is the name the peer's certificate must carry (our certs
    name identities, not hosts, so it overrides the address for verification).
    ``root_pem`` without ``tls`` gives a server-authenticated channel with no
    client certificate (used only to join). ``options`` replaces
    :data:`CHANNEL_OPTIONS` (agents' sessions use :data:`AGENT_CHANNEL_OPTIONS`).
    """
    import grpc
    import grpc.aio

    options = list(CHANNEL_OPTIONS if options is None else options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    if tls is not None:
        creds = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
        return grpc.aio.secure_channel(target, creds, options=options)
    if root_pem is not None:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(root_pem), options=options)
    return grpc.aio.insecure_channel(target, options=options)
