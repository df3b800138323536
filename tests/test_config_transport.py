"""No password or token crosses the network in clear: a sign-in without TLS is refused when
the configuration is loaded, except to a server on this machine."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from service.config import (
    ConfigError,
    MailboxConfig,
    WebhookConfig,
    from_mapping,
    is_loopback,
    load,
    local_defaults,
)

ROOT = Path(__file__).resolve().parents[1]


def _imap(host: str, **keys: object) -> dict:
    return {
        "mailboxes": [
            {
                "name": "enquiries",
                "imap_host": host,
                "username": "u",
                "password_env": "PCSE_IMAP_PASSWORD",
                **keys,
            }
        ]
    }


@pytest.mark.parametrize(
    "keys",
    [
        {"imap_ssl": False},
        {"imap_ssl": False, "imap_port": 143},
        {"imap_ssl": False, "auth": "oauth2"},
    ],
)
def test_imap_sign_in_without_tls_is_refused(keys: dict) -> None:
    with pytest.raises(ConfigError) as refused:
        from_mapping(_imap("imap.example.nhs.uk", **keys))
    assert str(refused.value) == (
        "Mailbox 'enquiries' would sign in to imap.example.nhs.uk without TLS: set imap_ssl = "
        "true (port 993) or starttls = true; plain IMAP is allowed only to a loopback "
        "imap_host."
    )


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"imap_ssl": True, "imap_port": 993},
        {"imap_ssl": False, "starttls": True, "imap_port": 143},
    ],
)
def test_imap_over_tls_is_accepted(keys: dict) -> None:
    assert from_mapping(_imap("imap.example.nhs.uk", **keys)).mailboxes[0].imap_host


@pytest.mark.parametrize("auth", ["password", "oauth2"])
def test_smtp_sign_in_without_tls_is_refused(auth: str) -> None:
    with pytest.raises(ConfigError) as refused:
        from_mapping(
            {
                "smtp": {
                    "host": "smtp.example.nhs.uk",
                    "port": 587,
                    "auth": auth,
                    "password_env": "PCSE_SMTP_PASSWORD",
                }
            }
        )
    assert str(refused.value) == (
        f'[smtp] auth = "{auth}" would sign in to smtp.example.nhs.uk without TLS: set '
        "starttls = true (port 587) or ssl = true (port 465); signing in without TLS is "
        "allowed only to a loopback host."
    )


@pytest.mark.parametrize(
    "smtp",
    [
        {"host": "smtp.example.nhs.uk", "port": 587, "starttls": True, "auth": "password"},
        {"host": "smtp.example.nhs.uk", "port": 465, "ssl": True, "auth": "password"},
        {"host": "smtp.example.nhs.uk", "port": 25},  # no sign-in: nothing secret to send
    ],
)
def test_smtp_over_tls_or_without_sign_in_is_accepted(smtp: dict) -> None:
    assert from_mapping({"smtp": smtp}).smtp.host == "smtp.example.nhs.uk"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "::ffff:127.0.0.1",
    ],
)
def test_a_loopback_server_may_be_signed_in_to_without_tls(host: str) -> None:
    config = from_mapping(
        {**_imap(host, imap_ssl=False, imap_port=143), "smtp": {"host": host, "auth": "password"}}
    )
    assert config.mailboxes[0].imap_host == host and config.smtp.host == host


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "128.0.0.1", "::2", "localhost.example.org", "mylocalhost", "0.0.0.0"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_the_example_reads_imaps_and_smtp_with_starttls_and_secrets_from_the_environment() -> None:
    config = load(ROOT / "config.example.toml")
    [box] = config.mailboxes
    assert (box.imap_port, box.imap_ssl, box.auth) == (993, True, "password")
    assert box.password is None and box.password_env == "PCSE_IMAP_PASSWORD"
    smtp = config.smtp
    assert (smtp.port, smtp.starttls, smtp.auth) == (587, True, "password")
    assert smtp.password is None and smtp.password_env == "PCSE_SMTP_PASSWORD"


def test_message_seconds_must_be_positive() -> None:
    assert from_mapping({"limits": {"message_seconds": 5}}).limits.message_seconds == 5
    with pytest.raises(ConfigError, match=r"\[limits\] message_seconds"):
        from_mapping({"limits": {"message_seconds": 0}})


# Keys the example leaves out on purpose: a secret belongs in the environment (the *_env
# keys), never in the file.
SECRETS_IN_THE_FILE = {
    ("mailboxes", "password"),
    ("smtp", "password"),
    ("metrics", "token"),
    ("webhooks", "secret"),
}


def test_the_example_names_every_key_a_configuration_may_hold() -> None:
    """An operator copies config.example.toml: each key the loader takes is in its section
    there, set or commented out, so none is found only by reading the code."""
    named: dict[str, set[str]] = {}
    section = ""
    for line in (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines():
        if header := re.match(r"^#?\s*\[\[?(\w+)\]\]?", line):
            section = header.group(1)
        elif key := re.match(r"^#?\s*([a-z_0-9]+)\s*=", line):
            named.setdefault(section, set()).add(key.group(1))
    defaults = local_defaults()
    kinds = {"mailboxes": MailboxConfig, "webhooks": WebhookConfig}
    missing = []
    for field in dataclasses.fields(defaults):
        kind = kinds.get(field.name, type(getattr(defaults, field.name)))
        if not dataclasses.is_dataclass(kind):
            continue  # where the configuration came from, not a section
        for key in dataclasses.fields(kind):
            listed = key.name in named.get(field.name, set())
            if not listed and (field.name, key.name) not in SECRETS_IN_THE_FILE:
                missing.append(f"[{field.name}] {key.name}")
    assert missing == []
