"""The master's PKI on disk: files, identities, reloads, revocation, bundles."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from sloth_core.errors import CredentialsError
from sloth_core.security import ca
from sloth_core.security.credentials import load_admin_bundle, load_local_admin_tls
from sloth_core.security.join import find_local_token
from sloth_core.security.names import agent_server_name
from sloth_core.security.pki import MasterPKI

pytestmark = pytest.mark.timeout(20)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sans(cert_pem: bytes) -> tuple[list[str], list[str]]:
    ext = ca.load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return (
        ext.value.get_values_for_type(x509.UniformResourceIdentifier),
        ext.value.get_values_for_type(x509.DNSName),
    )


def test_first_start_writes_private_files_and_reload_keeps_them(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    pki.set_join_port(4242)
    pki.create_token(once=True)
    pki.revoke_agent("nobody")

    pki_dir = tmp_path / "pki"
    assert _mode(pki_dir) == 0o700
    files = [p for p in pki_dir.iterdir()]
    assert {p.name for p in files} >= {
        "ca-key.pem", "master-key.pem", "admin-key.pem", "join-key.pem",
        "join-token", "tokens.json", "certificates.json",
    }  # fmt: skip
    for path in files:
        assert _mode(path) == 0o600, path.name
    assert not list(tmp_path.glob(".pki-*")), "the staging dir was renamed away"

    again = MasterPKI.load_or_create(tmp_path)
    assert again.master_tls == pki.master_tls
    assert again.admin_tls == pki.admin_tls
    assert again.join_pin == pki.join_pin
    assert again.token_string() == pki.token_string()


def test_identities_are_in_the_certificate_sans(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    assert _sans(pki.master_tls.cert_pem) == (["sloth://master"], ["master.sloth"])
    assert _sans(pki.admin_tls.cert_pem) == (["sloth://admin/local"], [])
    join_cert = ca.load_cert(pki.join_cert_pem)
    assert join_cert.issuer == join_cert.subject  # self-signed, not from our CA
    assert join_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pki.join_pin == ca.pin_of_der(join_cert.public_bytes(serialization.Encoding.DER))


def test_agent_certificate_ignores_the_csr_sans(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    key = ca.generate_key()
    # A CSR that asks to be the master: the CA must not care.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent:web_1")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("sloth://master"), x509.DNSName("master.sloth")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert_pem = pki.issue_agent_certificate("web_1", csr)
    assert _sans(cert_pem) == (["sloth://agent/web_1"], [agent_server_name("web_1")])


def test_bad_csrs_are_refused(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    good = ca.build_csr(ca.generate_key(), "web1")
    with pytest.raises(CredentialsError, match="not for agent 'web2'"):
        pki.issue_agent_certificate("web2", good)
    with pytest.raises(CredentialsError, match="not a valid PEM CSR"):
        pki.issue_agent_certificate("web1", b"garbage")
    tampered = good.replace(b"MI", b"MJ", 1)
    with pytest.raises(CredentialsError):
        pki.issue_agent_certificate("web1", tampered)


def test_agent_dns_names_are_valid_and_one_to_one() -> None:
    assert agent_server_name("web-1") == "web-1.agent.sloth"
    assert agent_server_name("db.eu") == "db.eu.agent.sloth"
    odd = {agent_server_name(n) for n in ("Web1", "web_1", "WEB1", "a..b", "a.-b")}
    assert len(odd) == 5
    assert "web1.agent.sloth" not in odd  # "Web1" can never pass for "web1"
    for name in odd:
        assert name.endswith(".hashed-agent.sloth")
        assert all(label and label[0] != "-" and label[-1] != "-" for label in name.split("."))


def test_revocation_is_per_agent_persisted_and_rejoin_gets_a_fresh_serial(
    tmp_path: Path,
) -> None:
    pki = MasterPKI.load_or_create(tmp_path)
    first = ca.load_cert(pki.issue_agent_certificate("a", ca.build_csr(ca.generate_key(), "a")))
    other = ca.load_cert(pki.issue_agent_certificate("b", ca.build_csr(ca.generate_key(), "b")))
    assert pki.revoke_agent("a") == [first.serial_number]
    assert pki.is_revoked(first.serial_number)
    assert not pki.is_revoked(other.serial_number)
    assert MasterPKI.load(tmp_path).is_revoked(first.serial_number)

    again = ca.load_cert(pki.issue_agent_certificate("a", ca.build_csr(ca.generate_key(), "a")))
    assert again.serial_number != first.serial_number
    assert not pki.is_revoked(again.serial_number)
    # A further re-join supersedes (revokes) the previous certificate.
    third = ca.load_cert(pki.issue_agent_certificate("a", ca.build_csr(ca.generate_key(), "a")))
    assert pki.is_revoked(again.serial_number) and not pki.is_revoked(third.serial_number)


def test_revocation_by_another_process_is_seen(tmp_path: Path) -> None:
    master = MasterPKI.load_or_create(tmp_path)
    cert = ca.load_cert(master.issue_agent_certificate("a", ca.build_csr(ca.generate_key(), "a")))
    MasterPKI.load(tmp_path).revoke_agent("a")  # e.g. a local CLI command
    assert master.is_revoked(cert.serial_number)


def test_admin_bundle_round_trip_and_clear_errors(tmp_path: Path) -> None:
    pki = MasterPKI.load_or_create(tmp_path / "master")
    bundle = tmp_path / "elsewhere" / "admin.json"
    bundle.parent.mkdir()
    pki.export_admin_bundle(bundle, "ops")
    assert _mode(bundle) == 0o600
    exported = load_admin_bundle(bundle)
    assert exported.ca_pem == pki.admin_tls.ca_pem and exported.cert_pem != pki.admin_tls.cert_pem

    with pytest.raises(CredentialsError, match=r"not found at .*missing\.json"):
        load_admin_bundle(tmp_path / "missing.json")
    with pytest.raises(CredentialsError, match="cannot read"):
        load_admin_bundle(tmp_path)  # a directory: unreadable as a file, even for root
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CredentialsError, match="not a sloth-runner credentials file"):
        load_admin_bundle(bad)
    doc = json.loads(bundle.read_text())
    doc["key_pem"] = "not a key"
    bad.write_text(json.dumps(doc))
    with pytest.raises(CredentialsError, match="damaged"):
        load_admin_bundle(bad)


def test_local_discovery(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"--credentials") as info:
        load_local_admin_tls(tmp_path)
    assert str(tmp_path / "pki") in str(info.value)
    assert find_local_token(tmp_path) is None

    pki = MasterPKI.load_or_create(tmp_path)
    assert find_local_token(tmp_path) is None  # no join port published yet
    pki.set_join_port(5000)
    assert find_local_token(tmp_path) == pki.token_string()
    assert load_local_admin_tls(tmp_path) == pki.admin_tls


def test_incomplete_pki_dir_and_unwritable_bundle_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "tokens.json").write_text("{}")
    with pytest.raises(CredentialsError, match="holds no CA"):
        MasterPKI.load_or_create(tmp_path)

    pki = MasterPKI.load_or_create(tmp_path / "fresh")
    with pytest.raises(CredentialsError, match="cannot write credentials to"):
        pki.export_admin_bundle(tmp_path / "no" / "such" / "dir.json", "ops")
    pki.export_admin_bundle(tmp_path / "ops.json", "ops")  # the failed export left the name free
