"""Join tokens: format, and every way a token can be refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sloth_core.errors import CredentialsError
from sloth_core.security.pki import MasterPKI
from sloth_core.security.tokens import JoinToken, compute_proof

pytestmark = pytest.mark.timeout(20)

CSR = b"-----BEGIN CERTIFICATE REQUEST-----\n...\n"


@pytest.fixture
def pki(tmp_path: Path) -> MasterPKI:
    pki = MasterPKI.load_or_create(tmp_path)
    pki.set_join_port(50054)
    return pki


def _verify(pki: MasterPKI, token: str, csr: bytes = CSR) -> None:
    parsed = JoinToken.parse(token)
    pki.tokens.verify(parsed.token_id, compute_proof(parsed.secret, csr), csr)


def test_token_carries_port_and_pin_and_round_trips(pki: MasterPKI) -> None:
    text = pki.token_string()
    parsed = JoinToken.parse(text)
    assert text.startswith("SLOTH1.50054.")
    assert (parsed.join_port, parsed.pin) == (50054, pki.join_pin)
    assert str(parsed) == text
    assert parsed.secret.hex() not in repr(parsed)
    assert JoinToken.parse(pki.token_string(6000)).join_port == 6000


@pytest.mark.parametrize(
    "text",
    ["", "SLOTH1", "SLOTH2.1.a.b.c", "SLOTH1.x.a.b.c", "SLOTH1.99999.aa.bbbb.cccc", "a b c"],
)
def test_malformed_tokens(text: str) -> None:
    with pytest.raises(CredentialsError, match="malformed"):
        JoinToken.parse(text)


def test_default_token_is_reusable(pki: MasterPKI) -> None:
    _verify(pki, pki.token_string())
    _verify(pki, pki.token_string())


def test_wrong_secret_and_wrong_csr_are_invalid(pki: MasterPKI) -> None:
    parsed = JoinToken.parse(pki.token_string())
    with pytest.raises(CredentialsError, match=r"^join token is invalid or was rotated$"):
        pki.tokens.verify(parsed.token_id, compute_proof(b"x" * 32, CSR), CSR)
    with pytest.raises(CredentialsError, match="invalid or was rotated"):
        pki.tokens.verify(parsed.token_id, compute_proof(parsed.secret, b"other"), CSR)


def test_rotation_invalidates_only_the_default_token(pki: MasterPKI) -> None:
    old = pki.token_string()
    extra = pki.create_token()
    pki.tokens.rotate()
    assert pki.token_string() != old
    with pytest.raises(CredentialsError, match=r"^join token is invalid or was rotated$"):
        _verify(pki, old)
    _verify(pki, extra)
    _verify(pki, pki.token_string())
    assert (pki.pki_dir / "join-token").read_text().strip() == pki.token_string()


def test_single_use_token_is_consumed(pki: MasterPKI) -> None:
    once = pki.create_token(once=True)
    parsed = JoinToken.parse(once)
    pki.tokens.verify(parsed.token_id, parsed.proof(CSR), CSR, consume=False)
    _verify(pki, once)  # consumes
    with pytest.raises(CredentialsError, match=r"^join token was already used$"):
        _verify(pki, once)


def test_expired_token(pki: MasterPKI) -> None:
    token = pki.create_token(ttl_s=0.01)
    time.sleep(0.02)
    with pytest.raises(CredentialsError, match=r"^join token expired$"):
        _verify(pki, token)


def test_tokens_made_by_another_process_are_accepted(pki: MasterPKI, tmp_path: Path) -> None:
    cli = MasterPKI.load(tmp_path)  # e.g. `sloth-runner master token create`
    extra = cli.create_token(once=True)
    cli.tokens.rotate()
    _verify(pki, extra)
    _verify(pki, cli.token_string())
    assert pki.token_string() == cli.token_string()
