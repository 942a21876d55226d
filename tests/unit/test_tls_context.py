"""The client's TLS context loads its CAs at the first handshake (tls.py) and still verifies every
connection as httpx's own default would: an unknown certificate is refused, one from SSL_CERT_FILE
is trusted, and a certificate for another host name is refused."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atoll.client import AtollError, Client
from atoll.tls import client_context


def self_signed(d: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = d / f"{name}.pem", d / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"items": [], "nextPageToken": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate names "localhost"; (its port, the cert)."""
    cert, key = self_signed(tmp_path, "localhost")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(srv.server_address[1]), cert
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_the_context_verifies_like_a_default_one() -> None:
    ctx = client_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing loaded until a handshake needs it


def test_an_unknown_certificate_is_refused(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = https_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with (
        httpx.Client(verify=client_context()) as http,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"),
    ):
        http.get(f"https://localhost:{port}/")
    with (
        Client(url=f"https://localhost:{port}", token="t") as c,
        pytest.raises((AtollError, httpx.HTTPError)),
    ):
        c.get("/projects")


def test_ssl_cert_file_is_trusted_and_host_names_are_checked(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with Client(url=f"https://localhost:{port}", token="t") as c:
        assert c.get("/projects") == {"items": [], "nextPageToken": None}
    # The same certificate for an address it does not name: refused.
    with (
        httpx.Client(verify=client_context()) as http,
        pytest.raises(httpx.ConnectError, match="mismatch"),
    ):
        http.get(f"https://127.0.0.1:{port}/")
