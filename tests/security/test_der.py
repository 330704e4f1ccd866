"""Pins and serials read from certificates without cryptography, as cryptography reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sloth_core.security import ca, der
from sloth_core.security.pki import MasterPKI

pytestmark = pytest.mark.timeout(30)


def test_serial_and_pin_match_cryptography_for_every_kind_of_certificate(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    agent_key = ca.generate_key()
    pems = [pki.ca_pem, pki.master_tls.cert_pem, pki.admin_tls.cert_pem, pki.join_cert_pem,
            pki.issue_agent_certificate("web-1", ca.build_csr(agent_key, "web-1"))]
    # Random 159-bit serials: about half have the top bit of their first byte set (a leading 0x00 in DER).
    pems += [ca.cert_to_pem(ca.create_ca()[1]) for _ in range(40)]
    for pem in pems:
        cert = ca.load_cert(pem)
        assert der.serial_of_der(der.der_of_pem(pem)) == cert.serial_number
        assert der.pin_of_der(der.der_of_pem(pem)) == ca.pin_of_cert(cert)
        assert der.der_of_pem(pem) == cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("pem", [
    b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",  # truncated
    b"-----BEGIN CERTIFICATE-----\nAgEB\n-----END CERTIFICATE-----\n",  # an INTEGER, not a SEQUENCE
])
def test_what_is_not_a_certificate_is_refused(pem: bytes) -> None:
    with pytest.raises(ValueError):
        der.serial_of_der(der.der_of_pem(pem))
