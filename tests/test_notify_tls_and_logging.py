"""What the alerting may never do, without any service: log the webhook's address (a bearer
secret, which httpx's messages quote), or send mail over STARTTLS to a server whose
certificate it has not verified. A real TLS handshake against a self-signed certificate."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest

EVENT = {"event": "failed", "dag_id": "ingest__x", "task_id": "land", "run_id": "r",
         "try_number": 1, "message": "x.csv, row 1: rule header_matches_contract"}


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEGUARD_HOME", str(tmp_path / "home"))
    for name in ("SAFEGUARD_ALERT_WEBHOOK_URL", "SAFEGUARD_ALERT_SMTP_HOST",
                 "SAFEGUARD_ALERT_EMAIL_TO", "SAFEGUARD_ALERT_SMTP_USER",
                 "SAFEGUARD_ALERT_SMTP_CAFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_failed_webhook_is_logged_without_its_address(home, monkeypatch, caplog):
    from safeguard.notify import notify

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SAFEGUARD_ALERT_WEBHOOK_URL",
                       f"http://127.0.0.1:{port}/hooks/T0KEN-s3cret-4b1d")
    with caplog.at_level("ERROR", logger="safeguard.notify"):
        notify(dict(EVENT))
    assert any("alert webhook failed (ConnectError)" in r.getMessage() for r in caplog.records)
    assert "T0KEN-s3cret-4b1d" not in caplog.text and "/hooks/" not in caplog.text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _StartTlsServer(threading.Thread):
    """Just enough SMTP to offer STARTTLS, then a TLS handshake with a self-signed
    certificate; records whether the client went on to speak over TLS."""

    def __init__(self, cert: Path, key: Path):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.spoke_over_tls = False

    def run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            f = conn.makefile("rwb")
            for reply in (b"220 localhost ESMTP test\r\n",  # then EHLO
                          b"250-localhost\r\n250 STARTTLS\r\n",  # then STARTTLS
                          b"220 go ahead\r\n"):
                f.write(reply)
                f.flush()
                if not reply.startswith(b"220 go"):
                    f.readline()
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
                self.spoke_over_tls = bool(tls.recv(64))  # the client's EHLO over TLS
                tls.close()
            except (ssl.SSLError, OSError):
                pass


@pytest.fixture()
def starttls_server(home, tmp_path, monkeypatch):
    """The notifier pointed at a STARTTLS server with a self-signed certificate."""
    cert, key = _self_signed(tmp_path)
    server = _StartTlsServer(cert, key)
    server.start()
    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_HOST", "localhost")
    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_PORT", str(server.port))
    monkeypatch.setenv("SAFEGUARD_ALERT_EMAIL_TO", "duty@ngo.example")
    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_STARTTLS", "true")
    server.cert = cert
    return server


def test_starttls_refuses_a_certificate_it_cannot_verify(starttls_server, caplog):
    from safeguard.notify import notify

    with caplog.at_level("ERROR", logger="safeguard.notify"):
        notify(dict(EVENT))
    starttls_server.join(timeout=10)
    assert not starttls_server.spoke_over_tls  # never a word over an unverified channel
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text


def test_starttls_trusts_the_ca_it_is_given(starttls_server, monkeypatch, caplog):
    """With SAFEGUARD_ALERT_SMTP_CAFILE naming the issuer, the handshake goes through."""
    from safeguard.notify import notify

    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_CAFILE", str(starttls_server.cert))
    with caplog.at_level("ERROR", logger="safeguard.notify"):
        notify(dict(EVENT))
    starttls_server.join(timeout=10)
    assert starttls_server.spoke_over_tls
    assert "CERTIFICATE_VERIFY_FAILED" not in caplog.text
