"""[retention] and [[webhooks]] are checked like every other section: one sentence that
names the key."""

from __future__ import annotations

import pytest

from service.config import ConfigError, from_mapping

HOOK = {"name": "portal", "url": "https://sync.example.nhs.uk/changes", "secret_env": "S"}


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"retention": {"raw_after_days": "90"}}, "retention.raw_after_days must be a number"),
        ({"retention": {"personal_after_days": 0}}, "personal_after_days must be a number of days"),
        (
            {"retention": {"raw_after_days": 400, "personal_after_days": 300}},
            "must not be shorter than raw_after_days",
        ),
        ({"retention": {"batch_size": 0}}, "batch_size must be a whole number of 1 or more"),
        ({"retention": {"keep_for_ever": True}}, r"Unknown key\(s\) in \[retention\]"),
        ({"webhooks": {"name": "x"}}, "webhooks must be a list"),
        ({"webhooks": [{**HOOK, "max_attempts": "3"}]}, "webhooks\\[0\\].max_attempts"),
        ({"webhooks": [HOOK, HOOK]}, "needs a name of its own"),
        ({"webhooks": [{**HOOK, "url": "ftp://x"}]}, "must be an http\\(s\\) address"),
        (
            {"webhooks": [{**HOOK, "url": "http://sync.example.nhs.uk/changes"}]},
            "https only",
        ),
        (
            # Plain http to evil.example, which reads as a loopback host to a careless eye.
            {"webhooks": [{**HOOK, "url": "http://localhost:x@evil.example/hook"}]},
            "must not hold a user name or password",
        ),
        (
            {"webhooks": [{**HOOK, "url": "https://user:pass@sync.example.nhs.uk/changes"}]},
            "must not hold a user name or password",
        ),
        ({"webhooks": [{"name": "portal", "url": HOOK["url"]}]}, "needs secret_env"),
        ({"webhooks": [{**HOOK, "max_attempts": 0}]}, "max_attempts must be 1 or more"),
    ],
)
def test_mistakes_are_refused_in_one_sentence(data: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        from_mapping(data, source="pcse.toml")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/changes", "http://[::1]:9000/changes", "http://localhost/x"]
)
def test_defaults_and_a_loopback_receiver(url: str) -> None:
    config = from_mapping({"webhooks": [{**HOOK, "url": url}]}, source="pcse.toml")
    assert config.retention.raw_after_days == 90
    assert config.retention.personal_after_days == 730
    assert config.webhooks[0].max_attempts == 8
    assert config.schedule.webhook_seconds == 10
