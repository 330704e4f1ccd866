"""The master's PKI: its CA, its own and the admin's identities, joining.

Layout of ``<master data dir>/pki/`` (dir 0700, every file 0600)::

    ca.pem  ca-key.pem          the CA every identity chains to
    master.pem  master-key.pem  sloth://master, DNS master.sloth
    admin.pem  admin-key.pem    sloth://admin/local (the local CLI/console)
    join.pem  join-key.pem      self-signed; pinned by tokens, not CA-signed
    join-token                  the default join token (local discovery)
    tokens.json                 all join tokens and their state
    certificates.json           issued and revoked serials
    issuer.pem  issuer-key.pem  a joined master's intermediate CA (then no ca-key.pem)
    cluster.json                the shared store, when several masters share one

With a PostgreSQL store the tokens and the ledger live in the store instead
(:mod:`.shared_state`), so every master of the cluster honours the same
tokens and refuses the same revoked certificates; keys stay in files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sloth_core.errors import CredentialsError, NameTakenError, NotFoundError, UsageError
from sloth_core.names import validate_agent_name
from sloth_core.paths import ensure_private_dir
from sloth_core.transport import TLSConfig

from ._files import read_credential, write_private
from .credentials import write_admin_bundle
from .der import der_of_pem, pin_of_der
from .layout import (
    ADMIN_CERT,
    ADMIN_KEY,
    CA_CERT,
    CA_KEY,
    CLUSTER_FILE,
    ISSUER_CERT,
    ISSUER_KEY,
    JOIN_CERT,
    JOIN_KEY,
    LEDGER_FILE,
    MASTER_CERT,
    MASTER_KEY,
    TOKENS_STATE_FILE,
    pki_dir,
)
from .names import MASTER_SERVER_NAME, CertKind
from .revocation import AdminIdentity, CertificateLedger
from .tokens import JoinTokens

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from .ca import PrivateKey

log = logging.getLogger(__name__)

LOCAL_ADMIN = "local"
_FILE_PAIRS = (
    (CA_CERT, CA_KEY),
    (MASTER_CERT, MASTER_KEY),
    (ADMIN_CERT, ADMIN_KEY),
    (JOIN_CERT, JOIN_KEY),
)


@dataclass(frozen=True)
class _Pair:
    cert_pem: bytes
    key_pem: bytes


class MasterPKI:
    """Everything the master needs to prove who it is and to admit others.

    Build it with :meth:`load_or_create` (the master) or :meth:`load` (a
    local command that must not create a CA by accident).
    """

    def __init__(self, directory: Path, pairs: dict[str, _Pair]) -> None:
        self.pki_dir = directory
        for pair in pairs.values():
            _check_pem(pair)
        self.ca_pem: bytes = pairs[CA_CERT].cert_pem
        #: Whether this master holds the cluster's root key (it created the CA).
        self.holds_root = bool(pairs[CA_CERT].key_pem)
        # Parsed (with cryptography) when a certificate is first issued: a
        # master that issues none never loads it (see .der).
        self._signer = pairs[CA_CERT] if self.holds_root else pairs[ISSUER_CERT]
        #: Appended to every certificate we issue, so peers can chain it to the root.
        self.chain_pem = b"" if self.holds_root else pairs[ISSUER_CERT].cert_pem
        #: Server identity on the master port and client identity to agents.
        self.master_tls = TLSConfig(self.ca_pem, pairs[MASTER_CERT].cert_pem, pairs[MASTER_CERT].key_pem)
        #: The local operator's identity (``admin:local``).
        self.admin_tls = TLSConfig(self.ca_pem, pairs[ADMIN_CERT].cert_pem, pairs[ADMIN_CERT].key_pem)
        self.join_cert_pem: bytes = pairs[JOIN_CERT].cert_pem
        self.join_key_pem: bytes = pairs[JOIN_CERT].key_pem
        #: SHA-256 pin of the join certificate, as carried in tokens (the same on every master of a cluster).
        self.join_pin: str = pin_of_der(der_of_pem(self.join_cert_pem))
        self.store_url = shared_store_of(directory)
        shared_tokens = shared_ledger = None
        if self.store_url:
            from ._files import JsonState
            from .revocation import _empty as empty_ledger
            from .shared_state import SharedState
            from .tokens import _empty as empty_tokens

            # Seeded from the files the first time, so a master moving to the
            # shared store keeps its tokens and revocations.
            shared_tokens = SharedState(
                self.store_url, "tokens", empty_tokens,
                seed=lambda: _tokens_only(JsonState(directory / TOKENS_STATE_FILE, empty_tokens).read()),
            )
            shared_ledger = SharedState(
                self.store_url, "certificates", empty_ledger,
                seed=JsonState(directory / LEDGER_FILE, empty_ledger).read,
            )
        self.tokens = JoinTokens(directory, self.join_pin, shared_tokens)
        self._ledger = CertificateLedger(directory / LEDGER_FILE, shared_ledger)

    @functools.cached_property
    def _ca_cert(self) -> x509.Certificate:
        from . import ca  # cryptography: only where certificates are made

        return ca.load_cert(self.ca_pem)

    @functools.cached_property
    def _ca_key(self) -> PrivateKey:
        """The key this master signs with: the root's, or its intermediate's."""
        from . import ca

        return ca.load_key(self._signer.key_pem)

    @functools.cached_property
    def _signer_cert(self) -> x509.Certificate:
        from . import ca

        return self._ca_cert if self.holds_root else ca.load_cert(self._signer.cert_pem)

    def claim_store(self) -> None:
        """Several masters: a store belongs to the cluster of the first master that used it.

        A master with a CA of its own (started on the store without `master
        join-cluster`) would split the cluster in two that share tokens but
        not trust; it is refused before it serves anything.
        """
        if not self.store_url:
            return
        from sloth_core.errors import ClusterError
        from sloth_core.storage.postgres import redact

        from .shared_state import SharedState

        root = pin_of_der(der_of_pem(self.ca_pem))
        owner = SharedState(self.store_url, "cluster", lambda: {"root": root}).read().get("root")
        if owner != root:
            raise ClusterError(
                f"the store {redact(self.store_url)} belongs to another cluster (root CA {owner}, ours {root}): "
                "make this master part of it with `sloth-runner master join-cluster` (a fresh --data-dir), "
                "or give it a database of its own"
            )

    @property
    def identity_label(self) -> str:
        """Which CA this master signs with, as ``master status`` shows it."""
        if self.holds_root:
            return "root CA"
        from cryptography.x509.oid import NameOID

        names = self._signer_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else "intermediate CA"

    # ------------------------------------------------------------ loading

    @classmethod
    def load_or_create(cls, data_dir: Path, shared_store: str | None = None) -> MasterPKI:
        """Load ``data_dir/pki``, creating a new CA and identities on first start.

        ``shared_store``: the PostgreSQL store the cluster's tokens and ledger
        live in ("" for the files; None leaves the recorded choice alone).
        """
        cls.create_if_absent(data_dir)
        if shared_store is not None:
            record_shared_store(data_dir, shared_store)
        return cls.load(data_dir)

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """Whether ``data_dir`` holds a PKI (its CA certificate)."""
        return (pki_dir(data_dir) / CA_CERT).exists()

    @classmethod
    def create_if_absent(cls, data_dir: Path) -> None:
        """Make a new CA and identities in ``data_dir`` unless it holds them (the master does it in a child: :mod:`.signer`)."""
        if not cls.exists(data_dir):
            cls._create(data_dir, pki_dir(data_dir))

    @classmethod
    def load(cls, data_dir: Path) -> MasterPKI:
        """Load an existing PKI; :class:`CredentialsError` if absent or damaged."""
        pki_path = pki_dir(data_dir)
        pairs: dict[str, _Pair] = {}
        for cert_file, key_file in _FILE_PAIRS:
            if key_file == CA_KEY and (pki_path / ISSUER_CERT).exists():
                # A joined master: the root's key stays with the first master.
                pairs[CA_CERT] = _Pair(read_credential(pki_path / CA_CERT, "cluster CA certificate"), b"")
                pairs[ISSUER_CERT] = _Pair(
                    read_credential(pki_path / ISSUER_CERT, "master's intermediate CA certificate"),
                    read_credential(pki_path / ISSUER_KEY, "master's intermediate CA key"),
                )
                continue
            pairs[cert_file] = _Pair(
                read_credential(pki_path / cert_file, "master certificate"),
                read_credential(pki_path / key_file, "master private key"),
            )
        try:
            pki = cls(pki_path, pairs)
        except (ValueError, TypeError) as exc:
            raise CredentialsError(f"the master's PKI in {pki_path} is damaged ({exc})") from None
        return pki

    @classmethod
    def _create(cls, data_dir: Path, target: Path) -> None:
        """Write a complete PKI into a temp dir, then rename it into place.

        The rename makes creation all-or-nothing: a crash never leaves a CA
        without the identities it signed, and of two masters racing on first
        start, one wins and the other loads its files.
        """
        from . import ca  # cryptography: only where certificates are made

        ensure_private_dir(data_dir)
        # mkdtemp creates the directory 0700.
        staging = Path(tempfile.mkdtemp(prefix=".pki-", dir=data_dir))
        try:
            ca_key, ca_cert = ca.create_ca()
            join_key, join_cert = ca.create_join_certificate()
            master_key, admin_key = ca.generate_key(), ca.generate_key()
            master_cert = ca.issue_certificate(
                ca_key,
                ca_cert,
                master_key.public_key(),
                "master",
                "",
                dns_name=MASTER_SERVER_NAME,
            )
            admin_cert = ca.issue_certificate(
                ca_key,
                ca_cert,
                admin_key.public_key(),
                "admin",
                LOCAL_ADMIN,
                dns_name=None,
            )
            made = (
                (ca_cert, ca_key),
                (master_cert, master_key),
                (admin_cert, admin_key),
                (join_cert, join_key),
            )
            for (cert_file, key_file), (cert, key) in zip(_FILE_PAIRS, made, strict=True):
                write_private(staging / key_file, ca.key_to_pem(key))
                write_private(staging / cert_file, ca.cert_to_pem(cert))
            ledger = CertificateLedger(staging / LEDGER_FILE)
            ledger.record("master", master_cert.serial_number)
            ledger.record(f"admin/{LOCAL_ADMIN}", admin_cert.serial_number)
            for lock in staging.glob(".*.lock"):
                lock.unlink()
            try:
                os.rename(staging, target)
            except OSError:
                if (target / CA_CERT).exists():
                    return  # another master created it first; use theirs
                raise CredentialsError(
                    f"{target} exists but holds no CA ({CA_CERT} is missing); move it away to start "
                    "a new CA (every agent will then have to join again)"
                ) from None
            log.info("created a new certificate authority in %s", target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)

    # ------------------------------------------------------------ join tokens

    def set_join_port(self, join_port: int) -> None:
        """Record the bound join port (tokens carry it) and write the token file.

        Call it right after binding the join port; until then there is no
        token file for local discovery to find.
        """
        self.tokens.publish(join_port)

    def token_string(self, join_port: int | None = None) -> str:
        """The default join token (for ``join_port``, else the published one)."""
        return self.tokens.current_token(join_port)

    def create_token(
        self,
        *,
        once: bool = False,
        ttl_s: float | None = None,
        join_port: int | None = None,
        for_name: str | None = None,
        replace: bool = False,
        kind: str = "agent",
    ) -> str:
        """An extra join token; see :meth:`JoinTokens.create` (``kind="master"``: for `master join-cluster`)."""
        if for_name is not None:
            validate_agent_name(for_name)
        return self.tokens.create(
            once=once, ttl_s=ttl_s, join_port=join_port, for_name=for_name, replace=replace, kind=kind
        )

    def agent_name_is_bound(self, name: str) -> bool:
        """Whether agent ``name`` holds a certificate that was not revoked."""
        return self._ledger.holds_valid(f"agent/{name}")

    # ------------------------------------------------------------ issuing

    def issue_agent_certificate(self, name: str, csr_pem: bytes) -> bytes:
        """Sign agent ``name``'s CSR in this process and return the certificate PEM (its chain appended).

        The CSR must be validly self-signed, P-256 and name the agent in its
        CN; its own SANs are ignored and ours set. Earlier certificates of the
        same agent are revoked (a re-join replaces the key). Raises
        :class:`CredentialsError` for a bad CSR, :class:`UsageError` for a bad name.
        The master signs joins in a child instead (:mod:`.signer`).
        """
        return self.record_agent_certificate(name, *self.sign_agent_csr(name, csr_pem))

    def sign_agent_csr(self, name: str, csr_pem: bytes) -> tuple[bytes, int]:
        """Agent ``name``'s certificate PEM (no chain) and its serial, signed here; not recorded."""
        from . import ca

        validate_agent_name(name)
        cert = ca.sign_agent_csr(self._ca_key, self._signer_cert, name, csr_pem)
        return ca.cert_to_pem(cert), cert.serial_number

    def record_agent_certificate(self, name: str, cert_pem: bytes, serial: int) -> bytes:
        """Record agent ``name``'s new certificate (revoking its earlier ones); the PEM with its chain."""
        validate_agent_name(name)
        superseded = self._ledger.record(f"agent/{name}", serial, supersede=True)
        log.info(
            "issued certificate %x to agent %s%s",
            serial,
            name,
            f" (revoked {len(superseded)} earlier)" if superseded else "",
        )
        return cert_pem + self.chain_pem

    @property
    def signing_pair(self) -> tuple[bytes, bytes]:
        """The certificate and key PEM this master signs agents' certificates with (root or intermediate)."""
        return self._signer.cert_pem, self._signer.key_pem

    def export_admin_bundle(self, path: Path, name: str) -> None:
        """Write a 0600 credentials file holding a new identity ``admin:<name>``.

        Every bundle is a person of its own: recorded by name in the run
        history, listed by :meth:`admins`, revoked alone by :meth:`revoke_admin`.
        The master's own ``admin:local`` never leaves its data dir, and a name
        in use is refused rather than silently revoking its holder.
        """
        validate_agent_name(name, "admin")
        if name == LOCAL_ADMIN:
            raise UsageError(
                f"admin:{LOCAL_ADMIN} is the master's own identity (the local CLI and console); "
                "give the operator a name of their own with --name"
            )
        if self._ledger.holds_valid(f"admin/{name}"):
            raise NameTakenError(
                f"admin:{name} already exists; choose another --name, or revoke it first with "
                f"`sloth-runner master credentials revoke {name}`"
            )
        from . import ca

        key = ca.generate_key()
        cert = self._issue(key.public_key(), "admin", name, dns_name=None)
        self._ledger.record(f"admin/{name}", cert.serial_number, supersede=True)
        self._ledger.note_admin(name, str(path))
        try:
            write_admin_bundle(
                path,
                TLSConfig(self.ca_pem, ca.cert_to_pem(cert) + self.chain_pem, ca.key_to_pem(key)),
                f"admin:{name}",
            )
        except CredentialsError:
            self._ledger.revoke(f"admin/{name}")  # nobody holds it: free the name again
            raise

    def admins(self) -> list[AdminIdentity]:
        """Every exported admin identity, and the master's own ``admin:local``."""
        exported = [a for a in self._ledger.admins() if a.name != LOCAL_ADMIN]
        return [AdminIdentity(LOCAL_ADMIN, True, 0.0, 0.0, ""), *exported]

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        kind: CertKind,
        name: str,
        *,
        dns_name: str | None,
    ) -> x509.Certificate:
        from . import ca

        return ca.issue_certificate(self._ca_key, self._signer_cert, public_key, kind, name, dns_name=dns_name)

    # ------------------------------------------------------------ revoking

    def revoke_agent(self, name: str) -> list[int]:
        """Revoke agent ``name``'s certificates; it must re-join with a token."""
        serials = self._ledger.revoke(f"agent/{name}")
        log.info("revoked %d certificate(s) of agent %s", len(serials), name)
        return serials

    def revoke_admin(self, name: str) -> list[int]:
        """Revoke admin ``name``'s certificates; the master ends its open streams too."""
        if name == LOCAL_ADMIN:
            raise UsageError(
                f"admin:{LOCAL_ADMIN} is the master's own identity; it cannot be revoked "
                "(the files in the master's data dir are its access check)"
            )
        serials = self._ledger.revoke(f"admin/{name}")
        if not serials:
            known = {a.name for a in self._ledger.admins()}
            if name in known:
                raise NotFoundError(f"admin:{name} was already revoked")
            raise NotFoundError(f"no admin identity {name!r}; see `sloth-runner master credentials list`")
        log.info("revoked %d certificate(s) of admin %s", len(serials), name)
        return serials

    def refresh_shared(self) -> None:
        """Several masters: re-read the cluster's ledger now (another master revoked someone)."""
        self._ledger.refresh_soon()

    def is_revoked(self, serial: int) -> bool:
        """Whether a certificate serial was revoked (see :class:`~.identity.Authorizer`)."""
        return self._ledger.is_revoked(serial)

    def revoked_serials(self) -> frozenset[int]:
        """Every revoked serial; the same object until the list changes."""
        return self._ledger.revoked_serials()

def _check_pem(pair: _Pair) -> None:
    """Refuse files that are plainly not PEM now; parsing them waits until they are used."""
    der_of_pem(pair.cert_pem)
    if pair.key_pem and b"PRIVATE KEY-----" not in pair.key_pem:
        raise ValueError("not a PEM private key")


def shared_store_of(pki_path: Path) -> str:
    """The PostgreSQL store this master shares with its cluster ("" when none)."""
    import json

    try:
        return str(json.loads((pki_path / CLUSTER_FILE).read_bytes()).get("store") or "")
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{pki_path / CLUSTER_FILE} is damaged or unreadable ({exc})") from None


def record_shared_store(data_dir: Path, store_url: str) -> None:
    """Say which store holds this master's tokens and ledger (none: its files)."""
    import json

    path = pki_dir(data_dir) / CLUSTER_FILE
    if store_url:
        ensure_private_dir(pki_dir(data_dir))
        write_private(path, json.dumps({"store": store_url}).encode())
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _tokens_only(doc: dict) -> dict:  # type: ignore[type-arg]
    """The tokens of a local tokens.json, without this master's own join port."""
    return {"join_port": None, "tokens": dict(doc.get("tokens", {}))}
