"""A second master joins the cluster: ``sloth-runner master join-cluster``.

The first master made the cluster's root CA and keeps its key. A master that
joins brings a master token (``master token create --master``, single-use)
and asks the first master's join port, as an agent would, after checking the
port's certificate against the token's pin: it sends a CSR for its own
intermediate CA and an HMAC over it (the secret never travels). It receives
the root certificate, its intermediate signed by the root, and the join
endpoint's certificate and key, so that every master presents the pin the
cluster's tokens carry and a token minted on one master works on all. The
intermediate's key never leaves the joining master; the joined master signs
its own master and admin identities and the agents that join through it, and
peers accept them all because they chain to the one root.

The call is ``/sloth.v1.Cluster/JoinCluster`` on the join port, JSON in and
out (a handler without a proto message, so it lives beside the Join service
without touching the wire protocol).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from sloth_core import transport
from sloth_core.errors import (
    ClusterError,
    CredentialsError,
    InvalidArgumentError,
    PermissionDeniedError,
    SlothError,
    UsageError,
)
from sloth_core.names import validate_agent_name
from sloth_core.paths import ensure_private_dir
from sloth_core.rpc_errors import abort, error_from_rpc

from ._files import write_private
from .layout import (
    ADMIN_CERT,
    ADMIN_KEY,
    CA_CERT,
    ISSUER_CERT,
    ISSUER_KEY,
    JOIN_CERT,
    JOIN_KEY,
    LEDGER_FILE,
    MASTER_CERT,
    MASTER_KEY,
    pki_dir,
)
from .names import JOIN_SERVER_NAME, MASTER_SERVER_NAME

if TYPE_CHECKING:
    from .pki import MasterPKI

log = logging.getLogger(__name__)

SERVICE = "sloth.v1.Cluster"
METHOD = f"/{SERVICE}/JoinCluster"
TIMEOUT_S = 10.0


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- first master


def cluster_join_handler(pki: MasterPKI) -> grpc.GenericRpcHandler:
    """The JoinCluster call, for the join port's server."""

    async def join_cluster(request: dict[str, Any], context: grpc.aio.ServicerContext) -> dict[str, Any]:
        try:
            reply = admit_master(pki, request)
        except SlothError as exc:
            await abort(context, exc)
        log.info("master %s joined the cluster from %s", request.get("name"), context.peer())
        return reply

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "JoinCluster": grpc.unary_unary_rpc_method_handler(
                join_cluster, request_deserializer=json.loads, response_serializer=_dumps
            )
        },
    )


def admit_master(pki: MasterPKI, request: dict[str, Any]) -> dict[str, Any]:
    """Check a master token's proof and sign the joiner's intermediate CA."""
    from . import ca

    try:
        name = str(request["name"])
        token_id = str(request["token_id"])
        proof = base64.b64decode(request["proof"])
        csr_pem = str(request["csr_pem"]).encode()
    except (KeyError, TypeError, ValueError):
        raise InvalidArgumentError("malformed cluster join request") from None
    try:
        validate_agent_name(name, "master")
    except UsageError as exc:
        raise InvalidArgumentError(exc.message) from None
    try:
        pki.tokens.verify(token_id, proof, csr_pem, consume=False, kind="master")
    except CredentialsError as exc:
        raise PermissionDeniedError(exc.message) from None
    if not pki.holds_root:
        raise ClusterError(
            "this master joined the cluster itself and holds no root key; join through the first master"
        )
    if not ca.can_sign_intermediates(pki._ca_cert):
        raise ClusterError(
            "this master's CA was made before clusters existed (path length 0) and cannot sign another "
            "master's CA; start the cluster from a new data dir"
        )
    try:
        public_key = ca.public_key_from_csr(csr_pem, name, kind="master")
    except CredentialsError as exc:
        raise InvalidArgumentError(exc.message) from None
    try:
        pki.tokens.consume(token_id)
    except CredentialsError as exc:
        raise PermissionDeniedError(exc.message) from None
    intermediate = ca.issue_intermediate(pki._ca_key, pki._ca_cert, public_key, name)
    return {
        "root_pem": pki.ca_pem.decode(),
        "intermediate_pem": ca.cert_to_pem(intermediate).decode(),
        # The join endpoint's identity is the cluster's: tokens pin it.
        "join_cert_pem": pki.join_cert_pem.decode(),
        "join_key_pem": pki.join_key_pem.decode(),
    }


# ---------------------------------------------------------------- joining master


async def join_cluster(from_address: str, token: str, name: str, data_dir: Path) -> None:
    """Make ``data_dir`` the PKI of a new master of the cluster ``from_address`` belongs to."""
    from sloth_core.footprint import python_ssl

    from . import ca
    from .join import reach_join_endpoint

    ssl = python_ssl()
    validate_agent_name(name, "master")
    target = pki_dir(data_dir)
    if target.exists():
        raise UsageError(f"{target} already exists: a master joins a cluster from an empty data dir")
    parsed, address, der = await reach_join_endpoint(token, from_address, TIMEOUT_S)

    key = ca.generate_key()
    csr_pem = ca.build_ca_csr(key, name)
    request = {
        "name": name, "token_id": parsed.token_id, "csr_pem": csr_pem.decode(),
        "proof": base64.b64encode(parsed.proof(csr_pem)).decode(),
    }
    root = ssl.DER_cert_to_PEM_cert(der).encode()
    async with transport.open_channel(address, None, server_name=JOIN_SERVER_NAME, root_pem=root) as channel:
        call = channel.unary_unary(METHOD, request_serializer=_dumps, response_deserializer=json.loads)
        try:
            reply = await call(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, address, what="the first master") from None

    root_pem = str(reply["root_pem"]).encode()
    intermediate_pem = str(reply["intermediate_pem"]).encode()
    join_cert_pem, join_key_pem = str(reply["join_cert_pem"]).encode(), str(reply["join_key_pem"]).encode()
    root_cert, intermediate = ca.load_cert(root_pem), ca.load_cert(intermediate_pem)
    if not ca.verify_issued_by(intermediate, root_cert) or not ca.public_keys_match(intermediate, key):
        raise CredentialsError(f"the master at {address} answered with a CA that does not chain to its root")
    if ca.pin_of_cert(ca.load_cert(join_cert_pem)) != parsed.pin:
        raise CredentialsError(f"the master at {address} answered with another join certificate than the token pins")
    write_joined_pki(data_dir, root_pem, key, intermediate_pem, join_cert_pem, join_key_pem)


def write_joined_pki(
    data_dir: Path, root_pem: bytes, issuer_key: Any, issuer_pem: bytes, join_cert_pem: bytes, join_key_pem: bytes
) -> None:
    """Write a joined master's PKI all at once (a temp dir renamed into place)."""
    from . import ca
    from .pki import LOCAL_ADMIN
    from .revocation import CertificateLedger

    ensure_private_dir(data_dir)
    issuer = ca.load_cert(issuer_pem)
    staging = Path(tempfile.mkdtemp(prefix=".pki-", dir=data_dir))
    try:
        master_key, admin_key = ca.generate_key(), ca.generate_key()
        master_cert = ca.issue_certificate(
            issuer_key, issuer, master_key.public_key(), "master", "", dns_name=MASTER_SERVER_NAME
        )
        admin_cert = ca.issue_certificate(issuer_key, issuer, admin_key.public_key(), "admin", LOCAL_ADMIN, dns_name=None)
        files = {
            CA_CERT: root_pem,
            ISSUER_CERT: issuer_pem,
            ISSUER_KEY: ca.key_to_pem(issuer_key),
            # Leaves carry the intermediate, so peers that trust only the root can chain them.
            MASTER_CERT: ca.cert_to_pem(master_cert) + issuer_pem,
            MASTER_KEY: ca.key_to_pem(master_key),
            ADMIN_CERT: ca.cert_to_pem(admin_cert) + issuer_pem,
            ADMIN_KEY: ca.key_to_pem(admin_key),
            JOIN_CERT: join_cert_pem,
            JOIN_KEY: join_key_pem,
        }
        for file_name, data in files.items():
            write_private(staging / file_name, data)
        ledger = CertificateLedger(staging / LEDGER_FILE)
        ledger.record(f"admin/{LOCAL_ADMIN}", admin_cert.serial_number)
        for lock in staging.glob(".*.lock"):
            lock.unlink()
        os.rename(staging, pki_dir(data_dir))
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
