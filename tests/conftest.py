"""Shared fixtures. Each kind of real server the tests use has a module in tests/fixtures."""

import logging

import pytest

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
