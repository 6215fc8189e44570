"""Automatic HTTPS for the router: a local certificate authority and certificates it signs.

The CA is made once per user under the data dir (``certs/``, mode 0700; private keys 0600) and
never leaves it; trusting its certificate (``dynosim certs`` says how) makes every app's
certificate valid. Each app gets a certificate for ``localhost``, ``<app>.localhost``,
127.0.0.1 and ::1, reissued when it is missing, about to expire, or signed by another CA.
Keys are ECDSA P-256: small and quick to handshake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import DynosimError
from .store import data_dir

__all__ = ["CertError", "Issued", "ca_path", "ensure_ca", "issue", "server_context"]

CA_DAYS = 3650
LEAF_DAYS = 397  # browsers refuse server certificates valid for longer than 398 days
RENEW_DAYS = 30
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3's are all of that already).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
#: Trusted system-wide, the CA can vouch only for loopback names: `localhost` (which covers
#: every `*.localhost`), 127.0.0.1 and ::1.
NAME_CONSTRAINTS = x509.NameConstraints(
    permitted_subtrees=[
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ],
    excluded_subtrees=None,
)


class CertError(DynosimError):
    """The certificate directory or its files cannot be created or read."""

    exit_code = 3


@dataclass(frozen=True)
class Issued:
    """Where a server certificate (with the CA after it) and its key are."""

    cert: Path
    key: Path
    ca: Path


def cert_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "certs"


def ca_path(home: Path | None = None) -> Path:
    """The CA certificate a client trusts (``curl --cacert``, ``REQUESTS_CA_BUNDLE``)."""
    return cert_dir(home) / "ca.pem"


def ensure_ca(home: Path | None = None) -> Path:
    """The CA certificate's path, making the CA first if there is none."""
    folder = cert_dir(home)
    with _writing(folder):
        _ca(folder)
    return folder / "ca.pem"


def issue(app: str, home: Path | None = None) -> Issued:
    """The app's server certificate, making the CA and the certificate when needed."""
    folder = cert_dir(home)
    with _writing(folder):
        ca_cert, ca_key = _ca(folder)
        cert, key = folder / f"{app}.pem", folder / f"{app}-key.pem"
        if not _fresh(cert, ca_cert):
            _write_leaf(app, cert, key, ca_cert, ca_key)
    return Issued(cert, key, folder / "ca.pem")


@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Make the owner-only folder and hold its lock (two `up`s must not make two CAs); an
    OSError inside becomes one clear CertError."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    except OSError as exc:
        raise CertError(f"cannot write certificates in {folder}: {exc.strerror or exc}") from None


def server_context(issued: Issued) -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2 or newer, forward-secret AEAD ciphers, HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(issued.cert, issued.key)
    return context


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dynosim"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, created so from the start."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Load the CA, or make it (once: every issued certificate depends on it)."""
    cert_file, key_file = folder / "ca.pem", folder / "ca-key.pem"
    if cert_file.exists() and key_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertError(f"{key_file} is not an EC key; remove {folder} to start over")
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if _constrained(cert):
            return cert, key
        # A CA from before name constraints could vouch for any site once trusted: replace it
        # (its certificates are reissued, as for any replaced CA).
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("dynosim local CA")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(NAME_CONSTRAINTS, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_file, _pem_key(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _constrained(cert: x509.Certificate) -> bool:
    try:
        found = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    return found == NAME_CONSTRAINTS


def _fresh(cert_file: Path, ca_cert: x509.Certificate) -> bool:
    """An existing certificate signed by this CA with more than RENEW_DAYS to run."""
    if not cert_file.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=RENEW_DAYS)


def _write_leaf(
    app: str,
    cert_file: Path,
    key_file: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName(f"{app}.localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{app}.localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_file, _pem_key(key))
    chain = cert.public_bytes(serialization.Encoding.PEM)
    cert_file.write_bytes(chain + ca_cert.public_bytes(serialization.Encoding.PEM))
