"""What the master reads from certificates without ``cryptography``: pins and serials.

A master that issues no certificate (restarted, its agents already joined)
needs only two facts from certificates: the join certificate's pin, for the
tokens it hands out, and each caller's serial number, for revocation. Both
are read here from the DER, so ``cryptography`` (11 MB of the master's RSS)
is imported only where certificates are made (:mod:`.ca`).

The certificates read here have already been verified: the master's own
files, or a peer's certificate that TLS checked against our CA.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"
_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0  # [0] EXPLICIT, before the serial in a v3 certificate


def der_of_pem(pem: bytes) -> bytes:
    """The DER of the first certificate in ``pem``; ValueError if there is none."""
    start = pem.find(_BEGIN)
    end = pem.find(_END, start)
    if start < 0 or end < 0:
        raise ValueError("no PEM certificate")
    try:
        return base64.b64decode(b"".join(pem[start + len(_BEGIN) : end].split()), validate=True)
    except binascii.Error:
        raise ValueError("a PEM certificate that is not base64") from None


def pin_of_der(der: bytes) -> str:
    """The pin of a certificate: url-safe base64 of the SHA-256 of its DER."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def serial_of_der(der: bytes) -> int:
    """The serial number of a DER certificate (RFC 5280, 4.1); ValueError if it is not one.

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, ... } ... }
    """
    certificate, _ = _element(der, 0, _SEQUENCE)
    tag_at, _ = _element(der, certificate, _SEQUENCE)  # tbsCertificate
    if der[tag_at : tag_at + 1] == bytes([_VERSION]):
        _, tag_at = _element(der, tag_at, _VERSION)
    content, end = _element(der, tag_at, _INTEGER)
    if content == end:
        raise ValueError("an empty serial number")
    return int.from_bytes(der[content:end], "big", signed=True)


def _element(der: bytes, at: int, tag: int) -> tuple[int, int]:
    """(start, end) of the contents of the element at ``at``, which must carry ``tag``."""
    if at >= len(der) or der[at] != tag:
        raise ValueError("not a DER certificate")
    start, length = _length(der, at + 1)
    if start + length > len(der):
        raise ValueError("a truncated DER certificate")
    return start, start + length


def _length(der: bytes, at: int) -> tuple[int, int]:
    """(where the contents start, their length) for the length octets at ``at``."""
    if at >= len(der):
        raise ValueError("a truncated DER certificate")
    first = der[at]
    if first < 0x80:
        return at + 1, first
    count = first & 0x7F
    if count == 0 or count > 4 or at + 1 + count > len(der):
        raise ValueError("not a DER certificate")
    return at + 1 + count, int.from_bytes(der[at + 1 : at + 1 + count], "big")
