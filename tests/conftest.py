"""Shared fixtures. Each kind of real server the tests use has a module in tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.dovecot",
    "tests.fixtures.smtp_sink",
    "tests.fixtures.browser",
    "tests.fixtures.workflow",
]
