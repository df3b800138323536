"""The IDLE watcher against a real Dovecot: told of new mail, and back after a server restart."""

from __future__ import annotations

import threading
import time

import pytest

from intake.idle import IdleWatcher
from intake.imap import ImapSource, credentials_for
from intake.poller import Backoff
from tests.fixtures.dovecot import DovecotServer, ImapAccount, plain_request

pytestmark = pytest.mark.dovecot


def wait_until(probe, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)


def test_idle_reconnects_after_the_server_restarts(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    box = imap_account.mailbox_config()
    calls: list[float] = []
    stop = threading.Event()
    watcher = IdleWatcher(
        box.name,
        lambda: ImapSource.from_config(box, credentials_for(box)),
        lambda: calls.append(time.monotonic()),
        stop,
        backoff=Backoff(base=0.2, cap=1.0),
    )
    watcher.start()
    try:
        wait_until(watcher.connected.is_set, 10)
        settled = len(calls)  # one call on connecting, for mail that came meanwhile
        imap_account.append([plain_request(1)])
        wait_until(lambda: len(calls) > settled, 5)

        assert watcher.sessions == 1
        dovecot.restart()
        wait_until(lambda: watcher.sessions == 2 and watcher.connected.is_set(), 15)
        before = len(calls)
        imap_account.append([plain_request(2)])
        wait_until(lambda: len(calls) > before, 5)
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()
