"""OAuth2 token providers, and XOAUTH2 sign-in against Dovecot's oauth2 passdb."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from core.db import Database
from intake.imap import ImapSource, credentials_for
from intake.oauth2 import (
    CachedTokenProvider,
    OAuth2Error,
    Token,
    command_fetcher,
    fetcher_for,
    parse_command_output,
    smtp_token_provider,
    token_provider,
    xoauth2_string,
)
from intake.pipeline import make_poller
from intake.source import SourceError
from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
from tests.fixtures.dovecot import DovecotServer, plain_request


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def counting_command(tmp_path: Path, output: str) -> tuple[str, Path]:
    """A command that prints `output` and counts how often it ran."""
    counter = tmp_path / "calls"
    script = tmp_path / "token.py"
    script.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "p.write_text(str(int(p.read_text() if p.exists() else 0) + 1))\n"
        f"sys.stdout.write({output!r})\n"
    )
    return f"{sys.executable} {script}", counter


def test_tokens_are_cached_and_fetched_again_before_they_expire(tmp_path: Path) -> None:
    command, counter = counting_command(tmp_path, '{"access_token": "tok", "expires_in": 3600}')
    clock = Clock()
    provider = CachedTokenProvider(command_fetcher(command, clock=clock), clock=clock)

    assert provider() == "tok"
    assert provider() == "tok"
    assert counter.read_text() == "1"
    clock.now += 3600 - 299  # inside the five minutes before expiry
    assert provider() == "tok"
    assert counter.read_text() == "2"
    provider.invalidate()
    provider()
    assert counter.read_text() == "3"


def test_command_output_forms() -> None:
    assert parse_command_output("plain-token\n", 100.0) == Token("plain-token", 700.0)
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 5000}).encode()).decode().rstrip("=")
    jwt = f"eyJhbGciOiJub25lIn0.{claims}.sig"
    assert parse_command_output(jwt, 100.0) == Token(jwt, 5000.0)
    assert parse_command_output('{"access_token": "a", "expires_in": 60}', 100.0) == Token(
        "a", 160.0
    )
    with pytest.raises(OAuth2Error, match="access_token"):
        parse_command_output('{"token": "a"}', 100.0)


def test_a_failing_command_says_why_without_its_output(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\nprint('secret-on-stdout')\n"
        "sys.stderr.write('tenant not found\\n')\nsys.exit(3)\n"
    )
    fetch = command_fetcher(f"{sys.executable} {script}")
    with pytest.raises(OAuth2Error) as caught:
        fetch()
    assert "status 3: tenant not found" in str(caught.value)
    assert "secret-on-stdout" not in str(caught.value)
    with pytest.raises(OAuth2Error, match="does not exist"):
        command_fetcher("/nonexistent/print-token")()


def test_msal_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    box = MailboxConfig(
        name="nhsmail",
        imap_host="outlook.office365.com",
        username="x",
        auth="oauth2",
        oauth2_provider="msal",
    )
    for name in ("PCSE_OAUTH2_TENANT", "PCSE_OAUTH2_CLIENT_ID", "PCSE_OAUTH2_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OAuth2Error, match="PCSE_OAUTH2_TENANT"):
        fetcher_for(box)
    monkeypatch.setenv("PCSE_OAUTH2_TENANT", "contoso.onmicrosoft.com")
    monkeypatch.setenv("PCSE_OAUTH2_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    with pytest.raises(OAuth2Error, match="PCSE_OAUTH2_CLIENT_SECRET"):
        fetcher_for(box)
    box.oauth2_provider = "other"
    with pytest.raises(OAuth2Error, match="must be"):
        fetcher_for(box)


def test_smtp_shares_the_first_oauth2_mailbox_provider(tmp_path: Path) -> None:
    command, _ = counting_command(tmp_path, "t")
    boxes = [
        MailboxConfig(name="plain", maildir="x"),
        MailboxConfig(
            name="m365",
            imap_host="h",
            username="u",
            auth="oauth2",
            oauth2_provider="command",
            oauth2_token_command=command,
        ),
    ]
    config = Config(mailboxes=boxes)
    assert smtp_token_provider(config) is token_provider(boxes[1])
    with pytest.raises(OAuth2Error, match="needs a"):
        smtp_token_provider(Config(mailboxes=boxes[:1]))
    assert xoauth2_string("u@x", "t") == "user=u@x\x01auth=Bearer t\x01\x01"


@pytest.mark.dovecot
def test_xoauth2_sign_in_against_dovecot(
    dovecot: DovecotServer, sqlite_database: Database, tmp_path: Path
) -> None:
    account = dovecot.add_user()
    account.append([plain_request(1)])
    token_file = tmp_path / "token"
    token_file.write_text(dovecot.introspection.issue(account.username))
    box = account.mailbox_config(
        name=f"oauth-{account.username}",
        password=None,
        auth="oauth2",
        oauth2_provider="command",
        oauth2_token_command=f"cat {token_file}",
    )
    config = Config(
        database=DatabaseConfig(sqlite_database.url),
        mailboxes=[box],
        storage=StorageConfig(str(tmp_path / "raw")),
    )

    report = make_poller(sqlite_database, config, box).poll()
    assert report.error is None and report.fetched == 1

    # The server stops accepting the cached token: a fresh one is fetched and used.
    old = token_file.read_text()
    dovecot.introspection.revoke(old)
    token_file.write_text(dovecot.introspection.issue(account.username))
    account.append([plain_request(2)])
    report = make_poller(sqlite_database, config, box).poll()
    assert report.error is None and report.fetched == 1

    # A token the server does not know is refused, with a clear error.
    token_file.write_text("not-a-token")
    token_provider(box).invalidate()
    source = ImapSource.from_config(box, credentials_for(box))
    with pytest.raises(SourceError, match="refused the sign-in"):
        source.connect()
    assert "not-a-token" not in str(dovecot.log_tail())
