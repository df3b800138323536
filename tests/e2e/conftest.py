"""The running system for the end-to-end tests, set up the way an operator would.

PostgreSQL, Dovecot over IMAPS, an SMTP server that wants STARTTLS and a login, a
configuration file with secrets in the environment, the directory loaded with the real
`pcse` import commands, and `pcse run` as a child process. Everything is shared by the
tests of a module (one service, one mailbox), so the module's tests run on one worker.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import Database
from demo.mail import stamp
from demo.run import DATA
from notifications.sink import SmtpSink
from service.config import to_toml
from tests.e2e.process import Service, pcse
from tests.fixtures.databases import empty_postgres
from tests.fixtures.dovecot import DovecotServer, ImapAccount

INBOX_ADDRESS = "pcse.portalenquiries@nhs.net"
# The receiving mail server's authserv-id, trusted in the configuration: the tests stamp
# each delivered message with its verdict, as that server would.
AUTHSERV_ID = "mx.e2e.nhs.test"


def e2e_config(
    *,
    db_url: str,
    address: str,
    imap_port: int,
    username: str,
    smtp_port: int,
    authserv_id: str,
    raw_dir: Path,
) -> str:
    return to_toml(
        {
            "database": {"url": db_url},
            "mailboxes": [
                {
                    "name": "enquiries",
                    "address": address,
                    "imap_host": "127.0.0.1",
                    "imap_port": imap_port,
                    "imap_ssl": True,
                    "username": username,
                    "auth": "password",
                    "password_env": "PCSE_E2E_IMAP_PASSWORD",
                    "folder": "INBOX",
                    "processed_folder": "Processed",
                    "failed_folder": "Failed",
                }
            ],
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "starttls": True,
                "auth": "password",
                "username": "pcse-e2e",
                "password_env": "PCSE_E2E_SMTP_PASSWORD",
                "from_address": address,
                "timeout_seconds": 10,
            },
            "security": {
                "sender_authentication": "authserv-id",
                "trusted_authserv_ids": [authserv_id],
            },
            "schedule": {"poll_seconds": 2, "idle": True, "outbox_seconds": 0.5},
            "storage": {"raw_dir": raw_dir},
            "notifications": {"max_replies_per_hour": 20},
        }
    )


@dataclass
class Stack:
    root: Path
    config: Path
    account: ImapAccount
    sink: SmtpSink
    db: Database
    service: Service
    env: dict[str, str]

    def another_worker(self, name: str) -> Service:
        """A second `pcse run` on the same configuration, as on a second machine."""
        return Service(self.config, self.root, self.env, name=name)

    def deliver(self, messages: list[bytes]) -> None:
        """What the receiving mail server does: stamp its verdict, then file in the inbox."""
        self.account.append([stamp(m, AUTHSERV_ID) for m in messages])

    def pcse(self, *args: str) -> str:
        return pcse(*args, config=self.config, cwd=self.root).stdout


def sink_tls(server: DovecotServer) -> ssl.SSLContext:
    """STARTTLS for the SMTP sink with the test certificate (it names 127.0.0.1)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.cert_path, server.root / "key.pem")
    return context


@pytest.fixture(scope="module")
def stack(
    dovecot_server: DovecotServer, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if dovecot_server.process is None:
        dovecot_server.start()
    empty_postgres(pg_url)
    root = tmp_path_factory.mktemp("e2e")
    account = dovecot_server.add_user()
    smtp_password = secrets.token_urlsafe(12)
    sink = SmtpSink(users={"pcse-e2e": smtp_password}, tls_context=sink_tls(dovecot_server))
    sink.start()
    config = root / "config.toml"
    config.write_text(
        e2e_config(
            db_url=pg_url,
            address=INBOX_ADDRESS,
            imap_port=dovecot_server.ssl_port,
            username=account.username,
            smtp_port=sink.port,
            authserv_id=AUTHSERV_ID,
            raw_dir=root / "raw",
        )
    )
    secrets_env = {
        "PCSE_E2E_IMAP_PASSWORD": account.password,
        "PCSE_E2E_SMTP_PASSWORD": smtp_password,
        # Trust the test certificate, as an operator would install a private CA.
        "SSL_CERT_FILE": str(dovecot_server.cert_path),
    }
    pcse("db", "upgrade", config=config, cwd=root)
    for command, name in (
        ("directory import-orgs", "organisations.csv"),
        ("directory import-users", "users.csv"),
        ("approvers import", "signers.csv"),
        ("ael import", "ael.csv"),
    ):
        pcse(*command.split(), str(DATA / name), config=config, cwd=root)
    service = Service(config, root, secrets_env)
    db = Database(pg_url)
    try:
        yield Stack(root, config, account, sink, db, service, secrets_env)
    finally:
        service.stop()
        sink.stop()
        db.dispose()


def count_rows(db: Database, statement: sa.Select) -> int:
    with db.transaction() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(statement.subquery())) or 0
