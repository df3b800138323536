"""TLS and sign-in: STARTTLS or implicit TLS, a password or an XOAUTH2 token, refusals."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from core.db import Database
from notifications.models import OutboxMessage
from notifications.samples import SAMPLE_CONTEXTS
from notifications.sender import send_pending
from notifications.sink import SmtpSink
from notifications.smtp import SmtpSetupError
from service.config import Config, SmtpConfig
from workflow.env import WorkflowEnv
from workflow.mail import enqueue


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The server's TLS context; the client trusts the certificate through SSL_CERT_FILE."""
    cert_file, key_file = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def queued(sqlite_database: Database) -> Database:
    with sqlite_database.transaction() as session:
        enqueue(
            session,
            WorkflowEnv(),
            purpose="redirect_market_entry",
            to_address="pharmacy@example.org",
            to_name="A Pharmacist",
            context=SAMPLE_CONTEXTS["redirect_market_entry"],
        )
    return sqlite_database


def started(sink: SmtpSink) -> Iterator[SmtpSink]:
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def password_sink(server_tls: ssl.SSLContext) -> Iterator[SmtpSink]:
    yield from started(SmtpSink(users={"pcse": "s3cret"}, tls_context=server_tls))


@pytest.fixture
def token_sink(server_tls: ssl.SSLContext) -> Iterator[SmtpSink]:
    yield from started(SmtpSink(tokens={"good-token"}, tls_context=server_tls))


def smtp(sink: SmtpSink, **settings: object) -> Config:
    return Config(
        smtp=replace(SmtpConfig(), host="127.0.0.1", port=sink.port, timeout_seconds=5, **settings)
    )


def statuses(database: Database) -> list[tuple[str, int, str | None]]:
    with database.transaction() as session:
        rows = session.scalars(select(OutboxMessage))
        return [(r.status, r.attempts, r.last_error) for r in rows]


def test_starttls_then_password(queued: Database, password_sink: SmtpSink) -> None:
    config = smtp(password_sink, starttls=True, auth="password", username="pcse", password="s3cret")
    assert send_pending(queued, config).sent == 1
    received = password_sink.wait_for(1)[0]
    assert received.login == "pcse"
    assert received.rcpt_tos == ("pharmacy@example.org",)


def test_password_from_the_environment(
    queued: Database, password_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PCSE_TEST_SMTP_PASSWORD", "s3cret")
    config = smtp(
        password_sink,
        starttls=True,
        auth="password",
        username="pcse",
        password_env="PCSE_TEST_SMTP_PASSWORD",
    )
    assert send_pending(queued, config).sent == 1


def test_a_wrong_password_sends_nothing_and_keeps_the_row(
    queued: Database, password_sink: SmtpSink
) -> None:
    config = smtp(password_sink, starttls=True, auth="password", username="pcse", password="wrong")
    report = send_pending(queued, config)
    assert report.sent == 0 and report.pending == 1
    assert "535" in report.error
    [(status, attempts, error)] = statuses(queued)
    assert (status, attempts) == ("pending", 1) and "535" in error
    assert password_sink.messages == []


def test_no_password_is_offered_without_tls(queued: Database, password_sink: SmtpSink) -> None:
    config = smtp(
        password_sink, starttls=False, auth="password", username="pcse", password="s3cret"
    )
    report = send_pending(queued, config)
    assert report.sent == 0 and "AUTH" in report.error
    assert password_sink.messages == []


def test_starttls_refuses_a_certificate_it_does_not_trust(
    queued: Database, password_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    config = smtp(password_sink, starttls=True, auth="password", username="pcse", password="s3cret")
    report = send_pending(queued, config)
    assert report.sent == 0 and "CERTIFICATE_VERIFY_FAILED" in report.error


def test_xoauth2_with_the_token_provider(queued: Database, token_sink: SmtpSink) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return "good-token"

    config = smtp(token_sink, starttls=True, auth="oauth2", username="pcse.portalenquiries@nhs.net")
    assert send_pending(queued, config, token_provider=provider).sent == 1
    assert calls == [1]
    assert token_sink.wait_for(1)[0].login == "pcse.portalenquiries@nhs.net"


def test_xoauth2_with_a_bad_token_is_refused(queued: Database, token_sink: SmtpSink) -> None:
    config = smtp(token_sink, starttls=True, auth="oauth2")
    report = send_pending(queued, config, token_provider=lambda: "stale-token")
    assert report.sent == 0 and "535" in report.error
    assert token_sink.messages == []


# aiosmtpd cannot tell that an implicit-TLS connection is encrypted, hence its warning.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(queued: Database, server_tls: ssl.SSLContext) -> None:
    sink = SmtpSink(users={"pcse": "s3cret"}, ssl_context=server_tls, auth_require_tls=False)
    with sink:
        config = smtp(sink, ssl=True, auth="password", username="pcse", password="s3cret")
        assert send_pending(queued, config).sent == 1
        assert sink.wait_for(1)[0].login == "pcse"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"auth": "oauth2"}, "token provider"),
        ({"auth": "password"}, "no password"),
        ({"ssl": True, "starttls": True}, "choose one"),
    ],
)
def test_settings_that_can_never_work_are_refused_before_claiming(
    queued: Database, smtp_sink: SmtpSink, settings: dict, problem: str
) -> None:
    with pytest.raises(SmtpSetupError, match=problem):
        send_pending(queued, smtp(smtp_sink, **settings))
    assert statuses(queued) == [("pending", 0, None)]


def test_a_token_provider_that_fails_keeps_the_rows_for_later(
    queued: Database, token_sink: SmtpSink
) -> None:
    def provider() -> str:
        raise RuntimeError("the token service did not answer")

    config = smtp(token_sink, starttls=True, auth="oauth2")
    report = send_pending(queued, config, token_provider=provider)
    assert report.sent == 0 and "the token service did not answer" in report.error
    [(status, attempts, error)] = statuses(queued)
    assert (status, attempts) == ("pending", 1) and "token service" in error
