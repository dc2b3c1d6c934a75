"""A server that requires TLS: the whole pipeline runs over verified TLS, and a wrong CA is
refused.

A PostgreSQL server of its own, TLS-only at the door (the embedded binaries are built without
OpenSSL, so a front terminates PostgreSQL's TLS for it, with a certificate made here by a CA
made here), is given to Safeguard as ``DATABASE_URL`` with ``sslmode=verify-full``:
``safeguard run`` must reach it from the loader, GX, dbt and Airflow.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import struct
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from conftest import TEST_HOME, safeguard_cli
from safeguard.config import Settings
from safeguard.ports import free_port

pytestmark = pytest.mark.service


def _ca(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _server_cert(ca_key, ca_cert):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem(obj) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return obj.public_bytes(serialization.Encoding.PEM)


@contextmanager
def _port(port: int):
    """The embedded server's port, for the start of a server that is not the tests' own."""
    before = os.environ.get("SAFEGUARD_PG_PORT")
    os.environ["SAFEGUARD_PG_PORT"] = str(port)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SAFEGUARD_PG_PORT")
        else:
            os.environ["SAFEGUARD_PG_PORT"] = before


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class TlsOnlyFront:
    """PostgreSQL's TLS, terminated in front of a server: what a server with ``hostssl`` lines
    only does at the door. A client must send SSLRequest and complete a TLS handshake with the
    given certificate; one that starts in the clear gets PostgreSQL's own refusal. (The
    embedded server's build has no OpenSSL, so the TLS is done here, by Python's ssl module.)"""

    def __init__(self, backend_port: int, cert: Path, key: Path):
        import ssl

        self.backend_port = backend_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.tls_sessions = self.refused_plain = 0
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10), "the TLS front did not start"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        started.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            length, code = struct.unpack("!II", await reader.readexactly(8))
            while code == GSSENC_REQUEST:  # no GSS here: libpq then asks for TLS
                writer.write(b"N")
                await writer.drain()
                length, code = struct.unpack("!II", await reader.readexactly(8))
            if code != SSL_REQUEST:
                await reader.readexactly(length - 8)
                self.refused_plain += 1
                text = (b"SFATAL\0VFATAL\0C28000\0Mno encryption: this server accepts TLS "
                        b"connections only (hostssl)\0\0")
                writer.write(b"E" + struct.pack("!I", len(text) + 4) + text)
                await writer.drain()
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.ctx)
            self.tls_sessions += 1
            back_reader, back_writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.backend_port)
            await asyncio.gather(self._pipe(reader, back_writer),
                                 self._pipe(back_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass  # a client gone, or a handshake it refused (a wrong CA)
        finally:
            writer.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def tls_server():
    """(the superuser's URL up to the database, the right CA file, a wrong CA file, the
    client's environment, the TLS front)."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("starts a server of its own")
    from safeguard.db.embedded import EmbeddedPostgres

    base = TEST_HOME.parent / (TEST_HOME.name + "-tls")
    subprocess.run(["rm", "-rf", str(base)], check=True)
    base.mkdir(parents=True)
    server = EmbeddedPostgres(Settings(root=Path(__file__).resolve().parents[1],
                                       home=base / "server"))
    with _port(free_port()):
        server.start()
    ca_key, ca_cert = _ca("Safeguard test CA")
    key, cert = _server_cert(ca_key, ca_cert)
    (base / "server.crt").write_bytes(_pem(cert))
    (base / "server.key").write_bytes(_pem(key))
    right, wrong = base / "ca.pem", base / "wrong-ca.pem"
    right.write_bytes(_pem(ca_cert))
    wrong.write_bytes(_pem(_ca("Somebody else's CA")[1]))
    front = TlsOnlyFront(server.port, base / "server.crt", base / "server.key")
    password = quote(server.settings.secret("SAFEGUARD_PG_SUPERUSER_PASSWORD"), safe="")
    admin = f"postgresql://postgres:{password}@127.0.0.1:{front.port}"
    env = {**os.environ, "SAFEGUARD_HOME": str(base / "client"),
           "SAFEGUARD_SAMPLE_CASES": "1500", "AIRFLOW_PORT": str(free_port())}
    yield admin, right, wrong, env, front
    front.close()
    server.stop()


def test_the_server_refuses_connections_without_tls(tls_server):
    admin, *_, front = tls_server
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(admin + "/postgres?sslmode=disable", connect_timeout=5)


def test_a_wrong_ca_is_refused_with_a_clear_message(tls_server):
    admin, _, wrong, env, _ = tls_server
    proc = safeguard_cli("db", "up", check=False, env={
        **env, "DATABASE_URL": f"{admin}/postgres?sslmode=verify-full&sslrootcert={wrong}"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot connect to PostgreSQL at 127.0.0.1" in proc.stderr
    assert "certificate verify failed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_whole_pipeline_runs_over_verified_tls(tls_server):
    admin, right, _, env, front = tls_server
    plain_before = front.refused_plain
    tls = f"sslmode=verify-full&sslrootcert={right}"
    env = {**env, "DATABASE_URL": f"{admin}/postgres?{tls}"}
    up = safeguard_cli("db", "up", check=False, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    run = safeguard_cli("run", check=False, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    # every connection went through TLS (none tried in the clear), and the data went through:
    # loaded by the loader, checked by GX, built by dbt, the runs recorded by Airflow
    assert front.refused_plain == plain_before and front.tls_sessions > 20
    with psycopg.connect(f"{admin}/safeguard?{tls}") as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("select count(*) from ops.batches where status = 'loaded'"
                            ).fetchone()[0] >= 4
        assert conn.execute("select count(*) from reporting.rpt_headline_figures"
                            ).fetchone()[0] > 0
    airflow_db = Settings(root=Path(__file__).resolve().parents[1],
                          home=Path(env["SAFEGUARD_HOME"])).airflow_db
    with psycopg.connect(f"{admin}/{airflow_db}?{tls}") as conn:
        assert conn.execute("select count(*) from dag_run where state = 'success'"
                            ).fetchone()[0] >= 4
