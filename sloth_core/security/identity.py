"""Who is calling, and may they: the authorization checks of every RPC.

The TLS layer has already proven the peer holds a certificate from our CA
(servers require client certificates). What remains is *which* identity it
names, read from its ``sloth://`` URI SAN, and whether its serial was revoked.

grpcio 1.85's ``context.auth_context()`` exposes, for an mTLS peer:
``transport_security_type`` (``b"ssl"``; ``b"insecure"`` on plaintext),
``x509_pem_cert``, ``x509_common_name``, ``x509_subject``,
``x509_subject_alternative_name`` (URIs and DNS names mixed), ``peer_uri``,
``peer_dns``, ``security_level`` and ``ssl_*`` details; no serial number.
The identity is read from those SANs; the serial from the PEM's DER
(:mod:`.der`, not ``cryptography``, which a master that issues nothing
need not load), cached by its bytes: a check then costs ~6 us, most of it
``auth_context()`` itself, plus ~4 us for the revocation list's ``stat`` on
the master.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, ParamSpec, Protocol

from sloth_core.errors import CertificateRevokedError, PermissionDeniedError

from .names import parse_identity_uri

if TYPE_CHECKING:
    import grpc.aio

IdentityKind = Literal["master", "agent", "admin", "insecure"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller: ``Identity("agent", "web1")``; ``str()`` gives ``agent:web1``."""

    kind: IdentityKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


INSECURE = Identity("insecure", "")


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The identity a verified client certificate names, and its serial."""

    identity: Identity
    serial: int


class RevocationSource(Protocol):
    """Anything that knows revoked serials; :class:`~.pki.MasterPKI` is one."""

    def is_revoked(self, serial: int) -> bool: ...


_NO_CERT = "the caller presented no client certificate"


def peer_certificate(context: grpc.aio.ServicerContext, *, need_serial: bool = True) -> PeerCertificate | None:
    """The caller's certificate identity; None on a plaintext connection.

    The identity is read from the SANs grpc already parsed. Without
    ``need_serial`` (nobody to check revocations against, as on an agent)
    the serial is 0.

    Raises :class:`PermissionDeniedError` for a TLS peer without a usable
    sloth identity (e.g. a call arriving on a port that does not require
    client certificates).
    """
    auth = context.auth_context()
    security = auth.get("transport_security_type")
    if security == [b"insecure"]:
        return None  # plaintext: only exists when the server runs with --insecure
    if security != [b"ssl"]:
        # Fail closed on anything unexpected (ALTS, local credentials...).
        raise PermissionDeniedError("the caller's connection is neither TLS nor an --insecure port")
    sans = auth.get("x509_subject_alternative_name")
    if not sans:
        raise PermissionDeniedError(_NO_CERT)
    named = _identity_from_sans(tuple(sans))
    if not need_serial:
        return named
    pems = auth.get("x509_pem_cert")
    if not pems:
        raise PermissionDeniedError(_NO_CERT)
    return PeerCertificate(named.identity, _serial_of_pem(pems[0]))


def _single_identity(uris: list[str], serial: int) -> PeerCertificate:
    identities = [parsed for uri in uris if (parsed := parse_identity_uri(uri))]
    if len(identities) != 1:
        raise PermissionDeniedError("the caller's certificate names no sloth-runner identity")
    kind, name = identities[0]
    return PeerCertificate(Identity(kind, name), serial)


@functools.lru_cache(maxsize=4096)
def _identity_from_sans(sans: tuple[bytes, ...]) -> PeerCertificate:
    return _single_identity([san.decode(errors="replace") for san in sans], 0)


def peer_identity(context: grpc.aio.ServicerContext) -> Identity:
    """Who is calling; ``Identity("insecure", "")`` on a plaintext connection."""
    peer = peer_certificate(context)
    return INSECURE if peer is None else peer.identity


@functools.lru_cache(maxsize=4096)
def _serial_of_pem(pem: bytes) -> int:
    # Exceptions are not cached, which is fine: they are for broken peers.
    from .der import der_of_pem, serial_of_der

    try:
        return serial_of_der(der_of_pem(pem))
    except ValueError:
        raise PermissionDeniedError("the caller's certificate cannot be parsed") from None


def _revoked_message(identity: Identity) -> str:
    remedy = (
        "ask for a new credentials bundle (`sloth-runner master credentials`)"
        if identity.kind == "admin"
        else "re-join with a new token"
    )
    return f"the certificate of {identity} was revoked; {remedy}"


class OpenCalls:
    """The calls in flight, by the certificate serial of their caller.

    Each RPC runs in a task of its own; the task is remembered until it is
    done, so a revocation can cancel it, and the servicer can then tell that
    cancellation (which it reports as the revocation) from a caller's own.
    """

    def __init__(self) -> None:
        self._calls: dict[asyncio.Task[object], tuple[int, Identity]] = {}
        self._ended: dict[asyncio.Task[object], CertificateRevokedError] = {}

    def track(self, serial: int, identity: Identity) -> None:
        task = asyncio.current_task()
        if task is None or task in self._calls:
            return
        self._calls[task] = (serial, identity)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[object]) -> None:
        self._calls.pop(task, None)
        self._ended.pop(task, None)

    def end_revoked(self, is_revoked: Callable[[int], bool]) -> int:
        """Cancel the calls of revoked certificates; returns how many."""
        verdicts: dict[int, bool] = {}
        ended = 0
        for task, (serial, identity) in list(self._calls.items()):
            if serial not in verdicts:
                verdicts[serial] = is_revoked(serial)
            if verdicts[serial] and not task.done() and task not in self._ended:
                self._ended[task] = CertificateRevokedError(_revoked_message(identity))
                task.cancel()
                ended += 1
        return ended

    def ended_by_revocation(self) -> CertificateRevokedError | None:
        task = asyncio.current_task()
        return None if task is None else self._ended.get(task)


class Authorizer:
    """The checks servicers call first in every RPC.

    The master builds ``Authorizer(pki)`` so revoked certificates are
    refused; an agent, which has no PKI and only ever checks for the master,
    builds ``Authorizer()``. Each ``require_*`` returns the caller's
    :class:`Identity` or aborts the RPC with ``PERMISSION_DENIED`` and a
    message for the person at the other end. A plaintext caller passes every
    check: a server only listens in plaintext when started with ``--insecure``.
    The ``check_*`` twins raise :class:`PermissionDeniedError` instead, for
    code that is not inside a gRPC handler.
    """

    def __init__(self, revocations: RevocationSource | None = None) -> None:
        self._revocations = revocations
        self._open = OpenCalls() if revocations is not None else None

    # ------------------------------------------------------------ sync checks

    def identify(self, context: grpc.aio.ServicerContext) -> Identity:
        """The caller's identity after the revocation check (any kind)."""
        peer = peer_certificate(context, need_serial=self._revocations is not None)
        if peer is None:
            return INSECURE
        if self._revocations is not None and self._revocations.is_revoked(peer.serial):
            raise CertificateRevokedError(_revoked_message(peer.identity))
        if self._open is not None:
            self._open.track(peer.serial, peer.identity)
        return peer.identity

    # ------------------------------------------------------------ revocation of open calls

    async def end_revoked_calls(self, period_s: float = 1.0) -> None:
        """Forever: end every call in flight whose certificate was revoked meanwhile.

        A check at the start of a call is not enough: a revoked operator's
        ``Watch``, ``runs show --follow`` or ``agent run`` would go on.
        """
        if self._open is None or self._revocations is None:
            return
        # Open calls were checked when they began: only a change to the list
        # can revoke one. Scanning 10,000 agents' sessions every second when
        # nothing changed was most of an idle 10,000-agent master's CPU.
        serials = getattr(self._revocations, "revoked_serials", None)
        seen: object = serials() if serials is not None else None
        while True:
            await asyncio.sleep(period_s)
            if serials is not None:
                current = serials()
                if current is seen:
                    continue
                seen = current
            self._open.end_revoked(self._revocations.is_revoked)

    def ended_by_revocation(self) -> CertificateRevokedError | None:
        """Why the current call's task was cancelled, if a revocation did it."""
        return None if self._open is None else self._open.ended_by_revocation()

    def check_admin(self, context: grpc.aio.ServicerContext) -> Identity:
        caller = self.identify(context)
        if caller.kind not in ("admin", "insecure"):
            raise PermissionDeniedError(f"only an admin may do this; the caller is {caller}")
        return caller

    def check_admin_or_peer(self, context: grpc.aio.ServicerContext) -> Identity:
        """An admin, or another master of the cluster relaying an admin's cancel or follow."""
        caller = self.identify(context)
        if caller.kind not in ("admin", "master", "insecure"):
            raise PermissionDeniedError(f"only an admin may do this; the caller is {caller}")
        return caller

    def check_master(self, context: grpc.aio.ServicerContext) -> Identity:
        caller = self.identify(context)
        if caller.kind not in ("master", "insecure"):
            raise PermissionDeniedError(f"only the master may do this; the caller is {caller}")
        return caller

    def check_agent(self, context: grpc.aio.ServicerContext, name: str) -> Identity:
        caller = self.identify(context)
        if caller.kind == "insecure":
            return caller
        if caller.kind != "agent":
            raise PermissionDeniedError(f"only agent {name!r} may do this; the caller is {caller}")
        if caller.name != name:
            raise PermissionDeniedError(f"the caller's certificate is for agent {caller.name!r}, not {name!r}")
        return caller

    # ------------------------------------------------------------ RPC guards

    async def require_admin(self, context: grpc.aio.ServicerContext) -> Identity:
        """Admin (CLI/console) callers only."""
        return await _or_abort(context, self.check_admin, context)

    async def require_admin_or_peer(self, context: grpc.aio.ServicerContext) -> Identity:
        """Admins, and other masters relaying (see :mod:`sloth_core.master.peers`)."""
        return await _or_abort(context, self.check_admin_or_peer, context)

    async def require_master(self, context: grpc.aio.ServicerContext) -> Identity:
        """The master only (an agent's Execute/Cancel/Shutdown)."""
        return await _or_abort(context, self.check_master, context)

    async def require_agent(self, context: grpc.aio.ServicerContext, name: str) -> Identity:
        """Exactly agent ``name`` with a certificate that is not revoked."""
        return await _or_abort(context, self.check_agent, context, name)


_P = ParamSpec("_P")


async def _or_abort(
    context: grpc.aio.ServicerContext,
    check: Callable[_P, Identity],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> Identity:
    try:
        return check(*args, **kwargs)
    except PermissionDeniedError as exc:
        from sloth_core.rpc_errors import abort

        await abort(context, exc)
