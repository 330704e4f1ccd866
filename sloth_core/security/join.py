"""Joining: the master's Join endpoint and the agent's side of it.

Master side: :class:`JoinServicer`, served on its own port
(``transport.bind_server_tls_only`` with the pinned join certificate) by its
own ``grpc.aio`` server. A gRPC server serves every registered service on
every port, and this port accepts clients without certificates, so the
Master service must never be registered on that server.

Agent side: :func:`join_master` sends nothing, not even a proof, before the
join endpoint has shown the certificate pinned in the token; the token's
secret never leaves the agent (only an HMAC over the CSR does), nor does the
private key it generates. :func:`load_agent_tls` reuses the stored result.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from sloth_core import transport
from sloth_core.errors import (
    CredentialsError,
    InvalidArgumentError,
    MasterUnreachableError,
    NameTakenError,
    PermissionDeniedError,
    SlothError,
)
from sloth_core.names import DEFAULT_MASTER_PORT, is_valid_name, join_host_port, split_host_port, validate_agent_name
from sloth_core.paths import ensure_private_dir
from sloth_core.proto import sloth_pb2, sloth_pb2_grpc
from sloth_core.rpc_errors import abort
from sloth_core.transport import TLSConfig

from ._files import read_credential, write_private
from .credentials import validated_tls
from .der import pin_of_der
from .layout import AGENT_CA, AGENT_CERT, AGENT_KEY, TOKEN_FILE, pki_dir
from .names import JOIN_SERVER_NAME, identity_uri
from .tokens import JoinToken

if TYPE_CHECKING:
    from .pki import MasterPKI

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0


# ---------------------------------------------------------------- master side


class JoinServicer(sloth_pb2_grpc.JoinServicer):
    """Admits agents holding a valid join token.

    ``name_in_use(name)`` is the master's answer to "is an *online* agent
    other than this joiner holding that name?"; when it says yes the join is
    refused with ``ALREADY_EXISTS``. A name bound to a certificate that was
    not revoked (a stopped or offline agent) is refused too, unless the token
    was made to replace it (``token create --for NAME --replace``); such a
    join revokes the earlier certificates of the name.
    """

    def __init__(
        self,
        pki: MasterPKI,
        *,
        name_in_use: Callable[[str], bool] | None = None,
        sign: Callable[[str, bytes], Awaitable[tuple[bytes, int]]] | None = None,
    ) -> None:
        self._pki = pki
        self._name_in_use = name_in_use
        # The master signs in a child (security.signer.Signer.sign_agent); by default, here.
        self._sign = sign or self._sign_here
        # Checking, signing and spending a single-use token happen without another join interleaving.
        self._one_at_a_time = asyncio.Lock()

    async def Join(self, request: sloth_pb2.JoinRequest, context: grpc.aio.ServicerContext) -> sloth_pb2.JoinResponse:
        try:
            async with self._one_at_a_time:
                cert_pem = await self._admit(request, context.peer())
        except SlothError as exc:
            await abort(context, exc)
        log.info("agent %s joined from %s", request.name, context.peer())
        return sloth_pb2.JoinResponse(certificate_pem=cert_pem, ca_pem=self._pki.ca_pem)

    async def _sign_here(self, name: str, csr_pem: bytes) -> tuple[bytes, int]:
        return self._pki.sign_agent_csr(name, csr_pem)

    async def _admit(self, request: sloth_pb2.JoinRequest, peer: str) -> bytes:
        """The new certificate (its chain appended), or a typed refusal."""
        name = request.name
        if not is_valid_name(name):
            raise InvalidArgumentError(f"invalid agent name {name!r}")
        tokens = self._pki.tokens
        try:
            # Token first: a caller without the secret learns nothing else.
            grant = tokens.verify(request.token_id, request.proof, request.csr_pem, consume=False)
        except CredentialsError as exc:
            log.warning("refused join of %r from %s: %s", name, peer, exc.message)
            raise PermissionDeniedError(exc.message) from None
        if grant.for_name is not None and grant.for_name != name:
            raise PermissionDeniedError(f"this join token is for agent {grant.for_name!r} only")
        if self._name_in_use is not None and self._name_in_use(name):
            raise NameTakenError(
                f"agent name {name!r} is held by another online agent; choose another --name or stop that agent first"
            )
        if not grant.replace and self._pki.agent_name_is_bound(name):
            # A stopped or offline agent still owns its name: a token holder
            # must not take its certificate and its commands. Only an
            # operator's explicit act frees it.
            log.warning("refused join of %r from %s: the name is bound to an existing certificate", name, peer)
            raise NameTakenError(name_bound_message(name))
        try:
            cert_pem, serial = await self._sign(name, request.csr_pem)
        except CredentialsError as exc:  # the CSR's own fault
            raise InvalidArgumentError(exc.message) from None
        try:
            # Spent only now, so a refused name or a broken CSR does not burn
            # a single-use token (a certificate signed for nothing is never handed out).
            tokens.consume(request.token_id)
        except CredentialsError as exc:
            raise PermissionDeniedError(exc.message) from None
        return self._pki.record_agent_certificate(name, cert_pem, serial)


def name_bound_message(name: str) -> str:
    return (
        f"agent name {name!r} belongs to an existing agent's certificate; to give it to this machine, "
        f"run `sloth-runner agent delete {name}` first, or join with a token from "
        f"`sloth-runner master token create --for {name} --replace`"
    )


# ---------------------------------------------------------------- agent side


async def join_master(
    master_address: str,
    token: str,
    name: str,
    data_dir: Path,
    *,
    timeout_s: float = JOIN_TIMEOUT_S,
) -> TLSConfig:
    """Join the master as agent ``name``; store and return the new identity.

    ``master_address`` may carry a port (``host:50053``); it is ignored,
    since the token names the join port. Raises :class:`CredentialsError` (bad,
    spent or foreign token, refused join), :class:`NameTakenError`,
    :class:`MasterUnreachableError` or :class:`UsageError` (bad name).
    """
    from sloth_core.footprint import python_ssl

    from . import ca  # cryptography: only where keys and CSRs are made

    ssl = python_ssl()  # not at the top: a running agent needs neither it nor cryptography
    validate_agent_name(name)
    parsed, address, der = await reach_join_endpoint(token, master_address, timeout_s)

    key = ca.generate_key()
    csr_pem = ca.build_csr(key, name)
    response = await _call_join(
        address,
        ssl.DER_cert_to_PEM_cert(der).encode(),
        name,
        parsed,
        csr_pem,
        timeout_s,
    )

    tls = _checked_reply(response.ca_pem, response.certificate_pem, ca.key_to_pem(key), name, address)
    directory = ensure_private_dir(pki_dir(data_dir))
    write_private(directory / AGENT_KEY, tls.key_pem)
    write_private(directory / AGENT_CA, tls.ca_pem)
    write_private(directory / AGENT_CERT, tls.cert_pem)  # last: its presence means "joined"
    return tls


def load_agent_tls(data_dir: Path, name: str | None = None) -> TLSConfig | None:
    """The identity a previous join stored, or None if this agent never joined.

    With ``name``, credentials for another agent name are an error rather
    than a surprise at the master.
    """
    directory = pki_dir(data_dir)
    if not (directory / AGENT_CERT).exists():
        return None
    tls = validated_tls(
        read_credential(directory / AGENT_CA, "agent CA certificate"),
        read_credential(directory / AGENT_CERT, "agent certificate"),
        read_credential(directory / AGENT_KEY, "agent key"),
        str(directory),
    )
    if name is not None:
        from . import ca  # cryptography: only where certificates are read

        uris = ca.identity_sans(ca.load_cert(tls.cert_pem))
        if identity_uri("agent", name) not in uris:
            raise CredentialsError(
                f"the credentials in {directory} are not for agent {name!r} ({', '.join(uris) or 'no identity'}); "
                "use that agent's name, or another --data-dir and join with --token"
            )
    return tls


async def reach_join_endpoint(token: str, master_address: str, timeout_s: float) -> tuple[JoinToken, str, bytes]:
    """Find the join port ``token`` names on ``master_address``'s host and check its certificate against the token's pin.

    Nothing is sent before the pin matches. Returns the parsed token, the
    join endpoint's address and its certificate (DER): what an agent's join
    and a master's ``join-cluster`` both start from.
    """
    parsed = JoinToken.parse(token)
    host, _ = split_host_port(master_address, default_port=DEFAULT_MASTER_PORT, what="master address")
    address = join_host_port(host, parsed.join_port)
    der = await asyncio.to_thread(fetch_certificate_der, host, parsed.join_port, timeout_s)
    if pin_of_der(der) != parsed.pin:
        raise CredentialsError(f"the master at {address} is not the one this token is for (certificate pin mismatch)")
    return parsed, address, der


def fetch_certificate_der(host: str, port: int, timeout_s: float) -> bytes:
    """The certificate the TLS endpoint presents, unverified (the caller pins it).

    Blocking; run it in a thread.
    """
    from sloth_core.footprint import python_ssl

    ssl = python_ssl()
    address = join_host_port(host, port)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pin, checked next
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=JOIN_SERVER_NAME) as tls_sock,
        ):
            der = tls_sock.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        raise CredentialsError(
            f"{address} did not complete a TLS handshake ({exc.reason}); is it the master's join port?"
        ) from None
    except TimeoutError:
        raise MasterUnreachableError(f"cannot reach the master's join port at {address}: timed out") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MasterUnreachableError(f"cannot reach the master's join port at {address}: {reason}") from None
    if not der:
        raise CredentialsError(f"{address} presented no certificate; is it the master's join port?")
    return der


async def _call_join(
    address: str,
    root_pem: bytes,
    name: str,
    token: JoinToken,
    csr_pem: bytes,
    timeout_s: float,
) -> sloth_pb2.JoinResponse:
    request = sloth_pb2.JoinRequest(name=name, token_id=token.token_id, csr_pem=csr_pem, proof=token.proof(csr_pem))
    # Server-authenticated only: the pinned certificate is the sole trust root.
    async with transport.open_channel(address, None, server_name=JOIN_SERVER_NAME, root_pem=root_pem) as channel:
        try:
            return await sloth_pb2_grpc.JoinStub(channel).Join(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _join_error(exc.code(), exc.details() or "", address) from None


def _join_error(code: grpc.StatusCode, details: str, address: str) -> SlothError:
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CredentialsError(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return NameTakenError(details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return MasterUnreachableError(f"cannot reach the master's join port at {address} ({details})")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return CredentialsError(f"the master refused to join us: {details}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CredentialsError(f"{address} does not accept joins; is the token from this master?")
    return CredentialsError(f"joining the master at {address} failed: {details}")


def _checked_reply(ca_pem: bytes, cert_pem: bytes, key_pem: bytes, name: str, address: str) -> TLSConfig:
    """Refuse to store a reply that would not work (wrong name, wrong key)."""
    from . import ca  # cryptography: only where keys and CSRs are made

    tls = validated_tls(ca_pem, cert_pem, key_pem, f"the reply of {address}")
    if identity_uri("agent", name) not in ca.identity_sans(ca.load_cert(cert_pem)):
        raise CredentialsError(f"the master at {address} issued a certificate for another name")
    return tls


def find_local_token(master_data_dir: Path) -> str | None:
    """The local master's default join token, if this user can read it.

    Same machine, same user: that is how ``sloth-runner demo`` and the quick
    start join without flags. The file is 0600, so that is the access check.
    """
    try:
        token = (pki_dir(master_data_dir) / TOKEN_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None
