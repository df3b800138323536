"""IMAP IDLE: be told of new mail within a second or two instead of waiting for the next poll.

A watcher holds its own read-only connection to the inbox folder, waits in IDLE, and calls
`on_mail` whenever the server reports new messages. IDLE is renewed well before servers drop
it (RFC 2177 allows them to after 30 minutes); a lost connection is re-opened with backoff,
and polling goes on meanwhile, so nothing depends on IDLE working.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

from intake.imap import ImapSource
from intake.poller import Backoff

log = logging.getLogger(__name__)

RENEW_SECONDS = 25 * 60
CHECK_SECONDS = 1.0
NEW_MAIL = (b"EXISTS", b"RECENT")


class IdleUnsupported(Exception):
    pass


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class IdleWatcher(threading.Thread):
    def __init__(
        self,
        name: str,
        source_factory: Callable[[], ImapSource],
        on_mail: Callable[[], None],
        stop: threading.Event,
        *,
        renew_seconds: float = RENEW_SECONDS,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name=f"idle-{name}", daemon=True)
        self.mailbox = name
        self.source_factory = source_factory
        self.on_mail = on_mail
        self.stop_event = stop
        self.renew_seconds = renew_seconds
        self.backoff = backoff or Backoff(base=2.0, cap=300.0)
        self.renewals = 0
        self.sessions = 0  # IDLE connections opened so far
        self.connected = threading.Event()

    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            try:
                self._watch()
                failures = 0
            except IdleUnsupported:
                log.info("mailbox %s does not offer IDLE; polling only", self.mailbox)
                return
            except Exception as exc:  # whatever went wrong, polling goes on; IDLE retries
                self.connected.clear()
                failures += 1
                delay = self.backoff.delay(failures)
                log.warning(
                    "mailbox %s: IDLE interrupted (%s); again in %.1f s", self.mailbox, exc, delay
                )
                self.stop_event.wait(delay)

    def _watch(self) -> None:
        source = self.source_factory()
        try:
            source.connect()
            if not source.has_capability("IDLE"):
                raise IdleUnsupported
            source.select(readonly=True)
            client = source.client
            assert client is not None
            client.idle()
            self.sessions += 1
            self.connected.set()
            # Anything that arrived while (re)connecting.
            self.on_mail()
            started = time.monotonic()
            while not self.stop_event.is_set():
                if not _readable(client.socket(), CHECK_SECONDS):
                    responses = []
                else:
                    responses = client.idle_check(timeout=0)
                    if not responses or any(r and r[0] == b"BYE" for r in responses):
                        # Readable with nothing to read is how a dropped connection looks
                        # (imapclient keeps the EOF to itself): a NOOP tells for sure.
                        client.idle_done()
                        client.noop()
                        client.idle()
                if any(len(r) > 1 and r[1] in NEW_MAIL for r in responses):
                    self.on_mail()
                if time.monotonic() - started >= self.renew_seconds:
                    client.idle_done()
                    client.noop()
                    client.idle()
                    self.renewals += 1
                    started = time.monotonic()
            client.idle_done()
        finally:
            self.connected.clear()
            source.close()
