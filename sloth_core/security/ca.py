"""Certificate authority primitives: keys, certificates, CSRs, pins.

Pure functions over ``cryptography`` objects; nothing here touches disk, so
the PKI (:mod:`.pki`) and the joining agent (:mod:`.join`) share them.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sloth_core.errors import CredentialsError

from .der import pin_of_der as pin_of_der  # its home needs no cryptography; here too for callers of ca
from .names import JOIN_SERVER_NAME, CertKind, agent_server_name, identity_uri

# No renewal protocol exists yet, so leaf certificates live long; revocation
# (not expiry) is how an agent is cut off.
CA_LIFETIME = datetime.timedelta(days=20 * 365)
LEAF_LIFETIME = datetime.timedelta(days=5 * 365)
# Tolerates clocks of master and agent hosts that disagree a little.
CLOCK_SKEW = datetime.timedelta(minutes=10)
# A P-256 CSR is ~400 bytes; anything huge is not ours and is not parsed.
MAX_CSR_BYTES = 16 * 1024

PrivateKey = ec.EllipticCurvePrivateKey


def generate_key() -> PrivateKey:
    """A fresh ECDSA P-256 key (the curve every gRPC TLS stack accepts)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("not an ECDSA private key")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def pin_of_cert(cert: x509.Certificate) -> str:
    return pin_of_der(cert.public_bytes(serialization.Encoding.DER))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA); a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _self_signed(
    key: PrivateKey, common_name: str, sans: list[x509.GeneralName] | None, path_length: int = 0
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def create_ca() -> tuple[PrivateKey, x509.Certificate]:
    """A new self-signed root CA of a cluster (path length 1: it signs leaves and
    the intermediate CAs of masters that join the cluster, which sign leaves only)."""
    key = generate_key()
    return key, _self_signed(key, "sloth-runner CA", None, path_length=1)


def can_sign_intermediates(ca_cert: x509.Certificate) -> bool:
    """Whether a root CA allows intermediates (CAs made before clusters had path length 0)."""
    constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    return constraints.path_length is None or constraints.path_length >= 1


def issue_intermediate(
    ca_key: PrivateKey, ca_cert: x509.Certificate, public_key: ec.EllipticCurvePublicKey, master_name: str
) -> x509.Certificate:
    """A master's own intermediate CA, signed by the root: it signs leaves only (path length 0)."""
    now = _now()
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"sloth-runner master CA ({master_name})"))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def build_ca_csr(key: PrivateKey, master_name: str) -> bytes:
    """A joining master's request for its intermediate CA."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(f"master:{master_name}")).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def create_join_certificate() -> tuple[PrivateKey, x509.Certificate]:
    """The join port's self-signed certificate, trusted only through its pin.

    It is CA:TRUE because joining agents use it as their trust root; BoringSSL
    accepted a self-signed leaf too, but a root that says it is one does not
    rely on that leniency. It is not signed by the sloth CA, so it can never
    pass as a master, agent or admin identity.
    """
    key = generate_key()
    return key, _self_signed(key, "sloth-runner join endpoint", [x509.DNSName(JOIN_SERVER_NAME)])


def issue_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    kind: CertKind,
    name: str,
    *,
    dns_name: str | None,
) -> x509.Certificate:
    """Sign a leaf certificate for identity ``kind``/``name``.

    The identity is the URI SAN; ``dns_name`` (for parties that serve) is what
    peers verify as the TLS server name. The CN is informational and contains
    a ':' so it can never be mistaken for a host name by gRPC's CN fallback.
    """
    now = _now()
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity_uri(kind, name))]
    if dns_name is not None:
        sans.append(x509.DNSName(dns_name))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if dns_name is not None:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"{kind}:{name}" if name else kind))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def sign_agent_csr(ca_key: PrivateKey, ca_cert: x509.Certificate, name: str, csr_pem: bytes) -> x509.Certificate:
    """Agent ``name``'s certificate for its CSR (checked by :func:`public_key_from_csr`: CredentialsError)."""
    return issue_certificate(
        ca_key, ca_cert, public_key_from_csr(csr_pem, name), "agent", name, dns_name=agent_server_name(name)
    )


def build_csr(key: PrivateKey, name: str) -> bytes:
    """A CSR for agent ``name``; its CN binds the name into the HMAC'd bytes."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(f"agent:{name}")).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def public_key_from_csr(csr_pem: bytes, name: str, kind: str = "agent") -> ec.EllipticCurvePublicKey:
    """Validate an agent's CSR and return its public key.

    Checks the CSR's self-signature (the agent holds the key) and that its CN
    names ``name``, so the proof over the CSR also covers the requested name.
    Anything else in it (SANs, extensions) is ignored: the CA sets its own.
    Raises :class:`CredentialsError` with a reason.
    """
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CredentialsError("certificate request is too large")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CredentialsError("certificate request is not a valid PEM CSR") from None
    try:
        signature_ok = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        # A key type or curve cryptography cannot even read is a bad CSR, not a crash.
        raise CredentialsError("certificate request key must be ECDSA P-256") from None
    if not signature_ok:
        raise CredentialsError("certificate request signature is invalid")
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialsError("certificate request key must be ECDSA P-256")
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [attr.value for attr in common_names] != [f"{kind}:{name}"]:
        raise CredentialsError(f"certificate request is not for {kind} {name!r}")
    return key


def identity_sans(cert: x509.Certificate) -> list[str]:
    """The URI SANs of ``cert`` (empty when it has none)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sans.get_values_for_type(x509.UniformResourceIdentifier)


def verify_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``cert`` was signed by ``ca_cert`` (used to sanity-check join replies)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def public_keys_match(cert: x509.Certificate, key: PrivateKey) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)
