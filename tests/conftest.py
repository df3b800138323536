"""Shared fixtures. Each kind of real server the tests use has a module in tests/fixtures."""

import logging

import pytest
from argon2 import PasswordHasher

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.dovecot",
    "tests.fixtures.smtp_sink",
    "tests.fixtures.browser",
    "tests.fixtures.workflow",
]


@pytest.fixture(autouse=True)
def _logger_levels_restored():
    """Each test leaves the loggers' levels as it found them: the pcse command, run in
    the test process, sets the levels of the libraries it quiets."""
    manager = logging.Logger.manager
    before = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root = logging.getLogger().level
    yield
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(before.get(name, logging.NOTSET))
    logging.getLogger().setLevel(root)


# Argon2 at its lowest cost: the same algorithm and code paths, a thousandth of the time.
# The tests sign in and guess passwords by the hundred, each hash 0.1 s at the service's
# cost (64 MiB, three passes); a `pcse` run as a child process keeps the service's cost.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from caseworker import accounts

    monkeypatch.setattr(accounts, "_hasher", CHEAP_HASHER)
    accounts.dummy_hash.cache_clear()
