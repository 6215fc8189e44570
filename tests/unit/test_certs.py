"""Automatic HTTPS: the local CA, the app certificate, and the router serving TLS with it."""

import asyncio
import datetime as dt
import re
import ssl
import stat

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import DNSName
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from test_router import Dyno

from dynosim import certs
from dynosim.router import Router, RouterError
from dynosim.router.haproxy import HAProxyRouter


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_is_made_once_and_private_files_are_owner_only(tmp_path):
    first = certs.issue("demo", tmp_path)
    ca = first.ca.read_bytes()
    second = certs.issue("demo", tmp_path)
    assert second.ca.read_bytes() == ca  # a trusted CA stays trusted
    assert second.cert.read_bytes() == first.cert.read_bytes()  # still fresh: not reissued
    assert mode(tmp_path / "certs") == 0o700
    assert mode(tmp_path / "certs" / "ca-key.pem") == 0o600
    assert mode(first.key) == 0o600
    assert certs.ca_path(tmp_path) == first.ca


def test_certificate_of_a_replaced_ca_is_reissued(tmp_path):
    old = certs.issue("demo", tmp_path).cert.read_bytes()
    (tmp_path / "certs" / "ca-key.pem").unlink()
    renewed = certs.issue("demo", tmp_path)
    assert renewed.cert.read_bytes() != old
    context = certs.server_context(renewed)  # the new key matches the new certificate
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def _signed_by_ca(home, name: x509.GeneralName) -> x509.Certificate:
    """A server certificate for `name` signed with the local CA's key, as a thief of the key
    (or a bug) could make one."""
    folder = home / "certs"
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([name]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _verify(home, leaf: x509.Certificate, host: str) -> None:
    ca_cert = x509.load_pem_x509_certificate(certs.ca_path(home).read_bytes())
    verifier = PolicyBuilder().store(Store([ca_cert])).build_server_verifier(DNSName(host))
    verifier.verify(leaf, [])


@pytest.mark.parametrize("host", ["example.com", "localhost.example.com", "github.com"])
def test_the_ca_cannot_vouch_for_other_sites(tmp_path, host):
    certs.ensure_ca(tmp_path)
    with pytest.raises(VerificationError, match="name constraint"):
        _verify(tmp_path, _signed_by_ca(tmp_path, x509.DNSName(host)), host)


@pytest.mark.parametrize("host", ["localhost", "demo.localhost"])
def test_the_ca_vouches_for_loopback_names(tmp_path, host):
    certs.ensure_ca(tmp_path)
    _verify(tmp_path, _signed_by_ca(tmp_path, x509.DNSName(host)), host)
    issued = x509.load_pem_x509_certificates(certs.issue("demo", tmp_path).cert.read_bytes())[0]
    _verify(tmp_path, issued, host)


def test_a_ca_without_name_constraints_is_replaced(tmp_path):
    certs.ensure_ca(tmp_path)
    folder = tmp_path / "certs"
    key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dynosim local CA")])
    now = dt.datetime.now(dt.UTC)
    unconstrained = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(unconstrained.public_bytes(serialization.Encoding.PEM))
    certs.issue("demo", tmp_path)
    renewed = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    assert renewed.extensions.get_extension_for_class(x509.NameConstraints).critical


@pytest.fixture(params=["python", "haproxy"])
def https_router(tmp_path, request):
    """A factory for a router (Python, or HAProxy) serving HTTP and HTTPS with the app's
    certificate."""
    issued = certs.issue("demo", tmp_path)

    def make(lines: list[str], https_port: int = 0) -> Router | HAProxyRouter:
        if request.param == "haproxy":
            return HAProxyRouter(
                "demo", lines.append, port=0, https_port=https_port, certificate=issued
            )
        context = certs.server_context(issued)
        return Router("demo", lines.append, port=0, https_port=https_port, ssl_context=context)

    make.ca = issued.ca
    return make


def test_https_is_trusted_with_the_ca_and_untrusted_without(https_router):
    async def scenario():
        dyno = Dyno()
        lines: list[str] = []
        router = https_router(lines)
        async with dyno.running():
            await router.start()
            router.add_backend("web.1", "127.0.0.1", dyno.port)
            try:
                url = router.https_url + "/secure?x=1"
                ca = str(https_router.ca)
                trusted = await asyncio.to_thread(requests.get, url, verify=ca)
                with pytest.raises(requests.exceptions.SSLError):
                    await asyncio.to_thread(requests.get, url, timeout=5)
                by_name = url.replace("127.0.0.1", "localhost")
                named = await asyncio.to_thread(requests.get, by_name, verify=ca)
                plain = await asyncio.to_thread(requests.get, router.url + "/")
            finally:
                await router.close()
        assert (trusted.status_code, trusted.text) == (200, "ok")
        assert named.status_code == 200
        seen = dyno.seen[0].headers
        https_port = router.https_url.rsplit(":", 1)[1]
        assert (seen["X-Forwarded-Proto"], seen["X-Forwarded-Port"]) == ("https", https_port)
        assert plain.status_code == 200
        assert dyno.seen[-1].headers["X-Forwarded-Proto"] == "http"
        assert re.search(r'path="/secure\?x=1" .* status=200 .* protocol=https$', lines[0])
        assert lines[-1].endswith("protocol=http")

    asyncio.run(scenario())


def test_only_tls_1_2_and_newer_with_forward_secret_ciphers(https_router):
    async def handshake(context: ssl.SSLContext, port: int) -> str:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return version

    async def scenario():
        router = https_router([])
        await router.start()
        port = int(router.https_url.rsplit(":", 1)[1])
        try:
            modern = ssl.create_default_context(cafile=https_router.ca)
            assert await handshake(modern, port) == "TLSv1.3"
            tls12 = ssl.create_default_context(cafile=https_router.ca)
            tls12.maximum_version = ssl.TLSVersion.TLSv1_2
            assert await handshake(tls12, port) == "TLSv1.2"
            cbc = ssl.create_default_context(cafile=https_router.ca)
            cbc.maximum_version = ssl.TLSVersion.TLSv1_2
            cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")  # CBC, SHA-1 MAC
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                await handshake(cbc, port)
        finally:
            await router.close()

    asyncio.run(scenario())


def test_busy_https_port_is_a_router_error_naming_the_option(https_router):
    async def scenario():
        router = https_router([])
        await router.start()
        taken = int(router.https_url.rsplit(":", 1)[1])
        second = https_router([], https_port=taken)
        try:
            with pytest.raises(RouterError) as error:
                await second.start()
        finally:
            await router.close()
        assert str(error.value).endswith("choose another port with --https-port")

    asyncio.run(scenario())
