"""Admin credentials: the local ones without flags, and the remote bundle.

Same user on the master's machine: the CLI and console read the master's
data dir directly (the files are 0600, so that *is* the access check).
Anyone else uses a bundle exported by ``MasterPKI.export_admin_bundle`` and
passed with ``--credentials``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sloth_core.errors import CredentialsError
from sloth_core.transport import TLSConfig

from ._files import read_credential, write_private
from .layout import ADMIN_CERT, ADMIN_KEY, CA_CERT, pki_dir

BUNDLE_FORMAT = "sloth-runner-credentials/1"


def load_local_admin_tls(master_data_dir: Path) -> TLSConfig:
    """The local admin identity from the master's data dir."""
    directory = pki_dir(master_data_dir)
    try:
        return validated_tls(
            read_credential(directory / CA_CERT, "CA certificate"),
            read_credential(directory / ADMIN_CERT, "admin certificate"),
            read_credential(directory / ADMIN_KEY, "admin key"),
            str(directory),
        )
    except CredentialsError as exc:
        raise CredentialsError(
            f"no usable admin credentials in {directory} ({exc}); on another machine or user, "
            "pass --credentials with a bundle from `sloth-runner master credentials`"
        ) from None


def write_admin_bundle(path: Path, tls: TLSConfig, identity: str) -> None:
    """Write ``tls`` as one JSON file, mode 0600 (it holds a private key)."""
    document = {
        "format": BUNDLE_FORMAT,
        "identity": identity,
        "ca_pem": tls.ca_pem.decode(),
        "cert_pem": tls.cert_pem.decode(),
        "key_pem": tls.key_pem.decode(),
    }
    try:
        write_private(path, (json.dumps(document, indent=1) + "\n").encode())
    except OSError as exc:
        raise CredentialsError(f"cannot write credentials to {path}: {exc.strerror or exc}") from None


def load_admin_bundle(path: Path) -> TLSConfig:
    """Read a bundle written by :func:`write_admin_bundle`."""
    raw = read_credential(path, "credentials file")
    malformed = f"{path} is not a sloth-runner credentials file; export a new one on the master"
    try:
        document = json.loads(raw)
        if document.get("format") != BUNDLE_FORMAT:
            raise CredentialsError(malformed)
        pems = [document[key].encode() for key in ("ca_pem", "cert_pem", "key_pem")]
    except (ValueError, AttributeError, KeyError, TypeError):
        raise CredentialsError(malformed) from None
    return validated_tls(*pems, str(path))


def validated_tls(ca_pem: bytes, cert_pem: bytes, key_pem: bytes, where: str) -> TLSConfig:
    """Fail here, with the file named, rather than later as an opaque TLS error.

    A structural check only: parsing with ``cryptography`` would add ~35 ms
    to every CLI call (a quarter of `agent run`'s budget); a certificate that
    looks right but is wrong is still refused by the TLS handshake.
    """
    for pem, marker in ((ca_pem, b"CERTIFICATE-----"), (cert_pem, b"CERTIFICATE-----"), (key_pem, b"PRIVATE KEY-----")):
        if not pem.lstrip().startswith(b"-----BEGIN ") or marker not in pem:
            raise CredentialsError(f"the credentials in {where} are damaged (not PEM certificates and key)")
    return TLSConfig(ca_pem, cert_pem, key_pem)
