"""The configuration is checked against the types each package declares: a mistake is
refused with one sentence naming the key and the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from service.config import ConfigError, from_mapping, load, to_toml


def test_a_port_written_as_text_is_refused_naming_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pcse.toml"
    path.write_text(
        '[[mailboxes]]\nname = "enquiries"\nimap_host = "127.0.0.1"\nimap_port = "993"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load(path)
    message = str(refused.value)
    assert "mailboxes[0].imap_port" in message and str(path) in message
    assert "whole number" in message and "'993'" in message


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"smtp": {"port": 25.5}}, "smtp.port must be a whole number"),
        ({"schedule": {"idle": "yes"}}, "schedule.idle must be true or false"),
        (
            {"security": {"trusted_authserv_ids": "mx.example"}},
            "security.trusted_authserv_ids must be a list of texts",
        ),
        ({"notifications": {"templates_dir": 3}}, "notifications.templates_dir must be text"),
        ({"web": 3}, r"web must be a table"),
        ({"mailboxes": {"name": "x"}}, "mailboxes must be a list"),
        (
            {"mailboxes": [{"name": "a", "maildir": "m"}, {"name": "b", "nope": 1}]},
            r"Unknown key\(s\) in \[mailboxes\[1\]\]: nope",
        ),
    ],
)
def test_wrong_types_are_refused(data: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as refused:
        from_mapping(data, "the-file.toml")
    assert "the-file.toml" in str(refused.value)


def test_whole_numbers_serve_where_numbers_are_asked_for() -> None:
    config = from_mapping({"workflow": {"reminder_after_days": 2, "expire_after_days": 7.5}})
    assert (config.workflow.reminder_after_days, config.workflow.expire_after_days) == (2, 7.5)


def test_secrets_still_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SECRET_IMAP", "from-the-environment")
    config = from_mapping(
        {
            "mailboxes": [
                {
                    "name": "a",
                    "imap_host": "127.0.0.1",
                    "imap_ssl": False,
                    "password_env": "TEST_SECRET_IMAP",
                }
            ]
        }
    )
    assert config.mailboxes[0].secret() == "from-the-environment"


def test_to_toml_writes_what_load_reads() -> None:
    data = {
        "database": {"url": "sqlite:///x"},
        "mailboxes": [{"name": "a", "maildir": 'm "quoted"', "batch_size": 5}],
        "security": {
            "sender_authentication": "authserv-id",
            "trusted_authserv_ids": ["mx.example"],
        },
        "schedule": {"poll_seconds": 0.5, "idle": False},
    }
    assert tomllib.loads(to_toml(data)) == data
    assert from_mapping(tomllib.loads(to_toml(data))).mailboxes[0].batch_size == 5


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgres://pcse:s3cret@db/pcse", r"write the scheme as postgresql\+psycopg://"),
        ("var/pcse.sqlite3", "it names no database kind"),
        ("mysql://pcse:s3cret@db/pcse", "mysql is not a database the service runs on"),
        ("postgresql+psycopg://pcse:s3cret@db:five/pcse", "cannot be read as a URL"),
        ("postgresql+psycopg://pcse:s3@cret@db/pcse", "write an @ in the password as %40"),
        ("PostgreSQL+psycopg://pcse:s3cret@db/pcse", "in lower case, with that driver"),
        ("postgresql+asyncpg://pcse:s3cret@db/pcse", "in lower case, with that driver"),
    ],
)
def test_a_database_url_the_service_cannot_use_is_one_sentence(url: str, said: str) -> None:
    """The forms people write first, refused when the configuration loads, with what to
    write instead, and never the password."""
    with pytest.raises(ConfigError, match=said) as refused:
        from_mapping({"database": {"url": url}})
    assert "s3cret" not in str(refused.value) and "cret@" not in str(refused.value)


@pytest.mark.parametrize("key", ["poll_seconds", "outbox_seconds", "housekeeping_seconds"])
@pytest.mark.parametrize("value", [0, -1, 0.01])
def test_a_schedule_that_would_spin_is_refused(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"\[schedule\] {key} must be .* at least 0.1"):
        from_mapping({"schedule": {key: value}})
    assert from_mapping({"schedule": {key: 0.5}}).schedule.__dict__[key] == 0.5


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"web": {"port": 99999}}, r"\[web\] port must be a whole number from 1 to 65535"),
        ({"smtp": {"port": 0}}, r"\[smtp\] port must be"),
        ({"metrics": {"port": -1}}, r"\[metrics\] port must be a whole number from 0"),
        (
            {"mailboxes": [{"name": "e", "imap_host": "127.0.0.1", "imap_port": 70000}]},
            "mailbox 'e': imap_port must be",
        ),
    ],
)
def test_a_port_out_of_range_is_refused(data: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        from_mapping(data)
    assert from_mapping({"metrics": {"port": 0}}).metrics.port == 0  # off


def test_a_database_url_is_shown_without_its_password_or_query() -> None:
    from service.context import shown_url

    url = "postgresql+psycopg://pcse:s3cret@db.example/pcse?password=s3cret&sslmode=require"
    assert shown_url(url) == "postgresql+psycopg://pcse:***@db.example/pcse"
