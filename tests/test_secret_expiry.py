"""An OAuth2 client secret about to expire, or expired, is said plainly to the operator:
in `pcse status`, on every caseworker page and in the service's log; and Entra ID's
expired-secret answer becomes one clear sentence."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core.db import Database
from core.errors import ConfigError
from intake.oauth2 import OAuth2Error, token_from_result
from intake.secret_expiry import WARN_DAYS, secret_expiries
from intake.settings import MailboxConfig
from service.cli import main
from service.config import load
from service.jobs import warnings_job
from service.notices import operator_warnings
from tests.fixtures.browser import WebClient

EXPIRES = date(2027, 5, 1)


def oauth_box(expires: date | None = EXPIRES, **overrides: object) -> MailboxConfig:
    values: dict = {
        "imap_host": "outlook.office365.com",
        "auth": "oauth2",
        "oauth2_client_secret_expires": expires,
    }
    values.update(overrides)
    return MailboxConfig(**values)


@pytest.mark.parametrize(
    ("today", "days_left"),
    [(date(2027, 4, 1), 30), (date(2027, 4, 30), 1), (EXPIRES, 0), (date(2027, 6, 1), -31)],
)
def test_a_secret_within_thirty_days_or_past_is_reported(today: date, days_left: int) -> None:
    [expiry] = secret_expiries([oauth_box()], today)
    assert expiry.days_left == days_left
    assert expiry.expired is (days_left < 0)
    sentence = expiry.sentence()
    assert "1 May 2027" in sentence and "PCSE_OAUTH2_CLIENT_SECRET" in sentence
    assert ("expired on" in sentence) is (days_left < 0)


def test_nothing_is_said_earlier_or_without_a_date_or_an_oauth2_secret() -> None:
    assert secret_expiries([oauth_box()], date(2027, 3, 31)) == []
    assert WARN_DAYS == 30
    today = date(2030, 1, 1)
    assert secret_expiries([oauth_box(None)], today) == []
    assert secret_expiries([oauth_box(auth="password")], today) == []
    command = oauth_box(oauth2_provider="command", oauth2_token_command="get-token")
    assert secret_expiries([command], today) == []


def write_config(tmp_path: Path, db_url: str, expires: str) -> Path:
    path = tmp_path / "pcse.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        "[[mailboxes]]\n"
        'name = "enquiries"\n'
        'imap_host = "outlook.office365.com"\n'
        'username = "pcse.portalenquiries@nhs.net"\n'
        'auth = "oauth2"\n'
        f"oauth2_client_secret_expires = {expires}\n",
        encoding="utf-8",
    )
    return path


def test_the_config_key_is_a_toml_date(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, "sqlite:///x.sqlite3", "2027-05-01"))
    assert config.mailboxes[0].oauth2_client_secret_expires == EXPIRES
    with pytest.raises(ConfigError, match="oauth2_client_secret_expires must be a date"):
        load(write_config(tmp_path, "sqlite:///x.sqlite3", '"1 May 2027"'))


@pytest.fixture
def pcse(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().out

    return run


def test_pcse_status_warns_of_an_expired_secret(
    sqlite_database: Database, tmp_path: Path, pcse: Callable[..., tuple[int, str]]
) -> None:
    config = write_config(tmp_path, sqlite_database.url, "2020-01-31")
    code, out = pcse("--config", str(config), "status", "--json")
    assert code == 0
    [warning] = json.loads(out)["warnings"]
    assert warning.startswith("The OAuth2 client secret of mailbox 'enquiries' expired on")
    code, out = pcse("--config", str(config), "status")
    assert f"WARNING: {warning}" in out


def test_pcse_status_says_nothing_of_a_distant_expiry(
    sqlite_database: Database, tmp_path: Path, pcse: Callable[..., tuple[int, str]]
) -> None:
    config = write_config(tmp_path, sqlite_database.url, "2999-01-01")
    code, out = pcse("--config", str(config), "status", "--json")
    assert code == 0 and json.loads(out)["warnings"] == []


def test_pcse_status_json_carries_the_unchecked_senders_warning(
    sqlite_database: Database, tmp_path: Path, pcse: Callable[..., tuple[int, str]]
) -> None:
    """A monitoring script reading `warnings` learns what the operator reading the text
    does: with sender_authentication = "none", anyone can write any From address."""
    config = write_config(tmp_path, sqlite_database.url, "2999-01-01")
    with config.open("a", encoding="utf-8") as more:
        more.write('\n[security]\nsender_authentication = "none"\n')
    code, out = pcse("--config", str(config), "status", "--json")
    assert code == 0
    [warning] = json.loads(out)["warnings"]
    assert warning.startswith("senders are NOT authenticated")
    code, out = pcse("--config", str(config), "status")
    assert out.count("NOT authenticated") == 1 and f"WARNING: {warning}" in out


def test_pcse_status_warns_when_no_mailbox_is_configured(
    sqlite_database: Database, tmp_path: Path, pcse: Callable[..., tuple[int, str]]
) -> None:
    config = tmp_path / "pcse.toml"
    config.write_text(f'[database]\nurl = "{sqlite_database.url}"\n', encoding="utf-8")
    code, out = pcse("--config", str(config), "status", "--json")
    assert code == 0
    [warning] = json.loads(out)["warnings"]
    assert warning.startswith(f"No [[mailboxes]] are configured ({config}): no mail is read.")


def test_the_service_logs_the_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load(write_config(tmp_path, "sqlite:///x.sqlite3", "2020-01-31"))
    job = warnings_job(config)
    assert job.seconds == 24 * 3600
    with caplog.at_level(logging.WARNING, logger="service.jobs"):
        job.run()
    assert any("client secret of mailbox 'enquiries' expired" in r.message for r in caplog.records)
    soon = datetime(2027, 4, 20, tzinfo=UTC)
    config_soon = load(write_config(tmp_path, "sqlite:///x.sqlite3", "2027-05-01"))
    assert "(in 11 day(s))" in operator_warnings(config_soon, soon)[0]


def test_every_caseworker_page_carries_the_warning(web: WebClient) -> None:
    sentence = "The OAuth2 client secret of mailbox 'enquiries' expired on 31 January 2020."
    web.settings.operator_warnings = lambda: [sentence]
    web.sign_in()
    for url in ("/", "/outbox"):
        page = web.get(url).text
        assert "For the service&#39;s operator" in page or "For the service's operator" in page
        assert "expired on 31 January 2020" in page
    web.settings.operator_warnings = list
    assert "For the service" not in web.get("/").text


def test_entra_ids_expired_secret_answer_is_one_clear_sentence() -> None:
    answer = {
        "error": "invalid_client",
        "error_description": "AADSTS7000222: The provided client secret keys for app "
        "'0000-1111' are expired. Visit the Azure portal to create new keys for your app.\r\n"
        "Trace ID: abc\r\nCorrelation ID: def\r\nTimestamp: 2027-05-02 09:00:00Z",
    }
    with pytest.raises(OAuth2Error) as raised:
        token_from_result(answer, 0.0, "PCSE_OAUTH2_CLIENT_SECRET")
    message = str(raised.value)
    assert message == (
        "The app registration's client secret has expired (AADSTS7000222): create a new one "
        "in Entra ID, put it in PCSE_OAUTH2_CLIENT_SECRET and update "
        "oauth2_client_secret_expires."
    )
    wrong = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"}
    with pytest.raises(OAuth2Error, match="does not accept the client secret"):
        token_from_result(wrong, 0.0)
    other = {"error": "unauthorized_client", "error_description": "AADSTS700016: no app\r\nTrace"}
    with pytest.raises(OAuth2Error, match=r"refused the client credentials: AADSTS700016: no app$"):
        token_from_result(other, 0.0)
    assert token_from_result({"access_token": "t", "expires_in": 60}, 100.0).expires_at == 160.0
