"""Certificates made in a child process (security/signer.py): the master's CA and its agents' joins."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sloth_core.errors import CredentialsError, SlothError
from sloth_core.harness import wait_until
from sloth_core.security import ca
from sloth_core.security.pki import MasterPKI
from sloth_core.security.signer import Signer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def signer(tmp_path: Path) -> AsyncIterator[Signer]:
    """A signer with a fresh CA's signing pair; closed (its child reaped) after the test."""
    made = Signer()
    made.use(MasterPKI.load_or_create(tmp_path).signing_pair)
    try:
        yield made
    finally:
        await made.close()


def _csr(name: str) -> bytes:
    return ca.build_csr(ca.generate_key(), name)


def _csr_with_unknown_key_algorithm(name: str) -> bytes:
    """A CSR whose key's algorithm OID is one cryptography cannot read (id-ecPublicKey's last arc changed)."""
    der = x509.load_pem_x509_csr(_csr(name)).public_bytes(serialization.Encoding.DER)
    ec_public_key = bytes.fromhex("06072A8648CE3D0201")
    assert der.count(ec_public_key) == 1
    der = der.replace(ec_public_key, bytes.fromhex("06072A8648CE3D0207"))
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()


async def test_joins_are_signed_by_one_child_that_leaves_when_idle(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    signer = Signer(idle_s=0.5)
    signer.use(pki.signing_pair)
    try:
        first_pem, first_serial = await signer.sign_agent("web-1", _csr("web-1"))
        child = signer._child
        second_pem, _ = await signer.sign_agent("web-2", _csr("web-2"))
        assert signer._child is child, "a burst of joins pays for one child"
        for pem, name in ((first_pem, "web-1"), (second_pem, "web-2")):
            cert = ca.load_cert(pem)
            cert.verify_directly_issued_by(ca.load_cert(pki.ca_pem))
            assert cert.subject.rfc4514_string() == f"CN=agent:{name}"
        assert ca.load_cert(first_pem).serial_number == first_serial

        await wait_until(lambda: not signer.running, timeout=10, what="the idle child to be let go")
        assert child is not None
        assert await asyncio.wait_for(child.wait(), 5) == 0, "it exits on its own once let go"
        third_pem, _ = await signer.sign_agent("web-3", _csr("web-3"))  # and the next join starts another
        ca.load_cert(third_pem).verify_directly_issued_by(ca.load_cert(pki.ca_pem))
    finally:
        await signer.close()
    assert not signer.running


async def test_a_bad_csr_is_refused_with_its_reason_and_the_child_serves_on(signer: Signer) -> None:
    with pytest.raises(CredentialsError, match="not a valid PEM CSR"):
        await signer.sign_agent("web-1", b"\x00\xffnot a csr")
    with pytest.raises(CredentialsError):
        await signer.sign_agent("web-1", _csr("web-2"))  # the CSR names someone else
    pem, _ = await signer.sign_agent("web-1", _csr("web-1"))
    assert ca.load_cert(pem).subject.rfc4514_string() == "CN=agent:web-1"


async def test_a_csr_cryptography_cannot_read_is_refused_and_the_child_serves_on(signer: Signer) -> None:
    await signer.sign_agent("web-1", _csr("web-1"))
    child = signer._child
    with pytest.raises(CredentialsError, match="must be ECDSA P-256"):
        await signer.sign_agent("web-2", _csr_with_unknown_key_algorithm("web-2"))
    await signer.sign_agent("web-3", _csr("web-3"))
    assert signer._child is child


async def test_nothing_is_signed_once_closed_and_no_child_is_left(tmp_path: Path) -> None:
    signer = Signer()
    signer.use(MasterPKI.load_or_create(tmp_path).signing_pair)
    asking = asyncio.create_task(signer.sign_agent("web-1", _csr("web-1")))
    await signer.close()
    with contextlib.suppress(SlothError, asyncio.CancelledError):
        await asking
    with pytest.raises(SlothError, match="the master is stopping"):
        await signer.sign_agent("web-2", _csr("web-2"))
    await wait_until(lambda: not signer.running, timeout=10, what="no child")


async def test_a_killed_child_is_replaced_and_nothing_is_lost(signer: Signer) -> None:
    await signer.sign_agent("web-1", _csr("web-1"))
    assert signer._child is not None
    killed = signer._child
    os.kill(killed.pid, signal.SIGKILL)
    await killed.wait()
    pem, _ = await signer.sign_agent("web-2", _csr("web-2"))
    assert ca.load_cert(pem).subject.rfc4514_string() == "CN=agent:web-2"
    assert signer._child is not killed


async def test_a_join_cancelled_mid_signature_never_hands_its_certificate_to_the_next(signer: Signer) -> None:
    await signer.sign_agent("warm-1", _csr("warm-1"))  # the child is up: the next request is in flight at once
    asked = signer._asked
    abandoned = asyncio.create_task(signer.sign_agent("web-1", _csr("web-1")))
    # Its request is written (in the same step as it is counted) and it waits for the answer.
    await wait_until(lambda: signer._asked > asked, timeout=10, what="the request to be sent", interval=0)
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    pem, _ = await signer.sign_agent("web-2", _csr("web-2"))
    assert ca.load_cert(pem).subject.rfc4514_string() == "CN=agent:web-2"


async def test_the_ca_is_made_by_the_child_that_then_signs_the_first_joins(tmp_path: Path) -> None:
    signer = Signer()
    try:
        await signer.create_pki(tmp_path)
        pki = MasterPKI.load(tmp_path)
        child = signer._child
        await signer.create_pki(tmp_path)  # it holds one: left alone
        assert MasterPKI.load(tmp_path).ca_pem == pki.ca_pem
        signer.use(pki.signing_pair)
        pem, _ = await signer.sign_agent("web-1", _csr("web-1"))
        ca.load_cert(pem).verify_directly_issued_by(ca.load_cert(pki.ca_pem))
        assert signer._child is child, "one child for the CA and the joins after it"
    finally:
        await signer.close()


async def test_no_join_is_signed_before_the_master_has_its_key(tmp_path: Path) -> None:
    signer = Signer()
    with pytest.raises(SlothError, match="no signing key yet"):
        await signer.sign_agent("web-1", _csr("web-1"))
    assert not signer.running


async def test_a_pki_dir_without_a_ca_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir(mode=0o700)
    (tmp_path / "pki" / "stray").write_text("x")
    signer = Signer()
    try:
        with pytest.raises(CredentialsError, match="holds no CA"):
            await signer.create_pki(tmp_path)
    finally:
        await signer.close()
    assert (tmp_path / "pki" / "stray").read_text() == "x"
