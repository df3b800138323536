"""Signed webhook POSTs of the change feed to a real HTTP server in this process: each
change reaches the receiver once, in order, through failures, retries and an answer lost."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database
from service.models import WebhookDelivery
from service.webhook_settings import WebhookConfig
from service.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryReport,
    deliver_all,
    enqueue,
    retry_failed,
    status,
    verify_signature,
)
from workflow import directory
from workflow.models import RoleChange

SECRET = "s3cret-shared-with-the-portal"


class Receiver:
    """What a receiver does: check the signature and the timestamp, take each event id
    once, and answer. `fail_next` makes the next answers 503; `lose_next` takes the
    change and then answers 500, as if the answer were lost on the way back."""

    def __init__(self) -> None:
        self.taken: list[dict[str, Any]] = []
        self.seen_ids: set[str] = set()
        self.posts = 0
        self.refused = 0
        self.fail_next = 0
        self.lose_next = 0
        self.lock = threading.Lock()

    def handle(self, body: bytes, headers: Any) -> int:
        with self.lock:
            self.posts += 1
            if not verify_signature(
                SECRET,
                body,
                headers.get(TIMESTAMP_HEADER, ""),
                headers.get(SIGNATURE_HEADER, ""),
                now=time.time(),
            ):
                self.refused += 1
                return 401
            if self.fail_next:
                self.fail_next -= 1
                return 503
            key = headers[IDEMPOTENCY_HEADER]
            if key not in self.seen_ids:
                self.seen_ids.add(key)
                self.taken.append(json.loads(body))
            if self.lose_next:
                self.lose_next -= 1
                return 500
            return 204


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(state.handle(body, self.headers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/pcse-changes"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def grant(db: Database, email: str, org: str = "B82002", role: str = "Claims Admin") -> None:
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code=org,
            email=email,
            name=email.split("@")[0],
            role=role,
            actor="test",
            reason="setup",
        )


def test_each_change_is_delivered_once_in_order_through_failures(
    db: Database, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    hook = WebhookConfig(
        name="portal",
        url=url,
        secret=SECRET,
        max_attempts=3,
        first_retry_seconds=60,
        timeout_seconds=5,
    )
    clock = FixedClock(datetime.now(UTC))
    for n in range(3):
        grant(db, f"user{n}@nhs.net")
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert (report.queued, report.sent) == (3, 3)
    assert [d["event_id"] for d in state.taken] == [1, 2, 3]
    assert state.taken[0]["email"] == "user0@nhs.net"
    assert state.taken[0]["action"] == "grant" and state.taken[0]["organisation"] == "B82002"

    # The receiver is down: the next change waits with backoff, and the one after it
    # waits behind it (in order), without being sent.
    grant(db, "user3@nhs.net")
    grant(db, "user4@nhs.net")
    state.fail_next = 2
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert (report.sent, report.retrying) == (0, 1)
    report = deliver_all(db, [hook], worker="w1", clock=clock)  # not due yet: no POST
    assert state.posts == 4
    clock.advance(seconds=61)
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert report.retrying == 1 and state.posts == 5
    (shown,) = status(db, [hook])
    assert shown["next_cursor"] == 4 and shown["pending"] == 2
    assert "503" in shown["last_error"]
    # It recovers: both go, in order.
    clock.advance(seconds=121)
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert report.sent == 2
    assert [d["event_id"] for d in state.taken] == [1, 2, 3, 4, 5]

    # The receiver takes a change but its answer is lost: the change is sent again with
    # the same idempotency key, and the receiver takes it once.
    grant(db, "user5@nhs.net")
    state.lose_next = 1
    deliver_all(db, [hook], worker="w1", clock=clock)
    clock.advance(seconds=61)
    deliver_all(db, [hook], worker="w1", clock=clock)
    assert [d["event_id"] for d in state.taken] == [1, 2, 3, 4, 5, 6]
    assert state.refused == 0


def test_after_max_attempts_it_is_failed_visible_and_blocks_until_retried(
    db: Database, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    hook = WebhookConfig(
        name="portal", url=url, secret=SECRET, max_attempts=2, first_retry_seconds=1
    )
    clock = FixedClock(datetime.now(UTC))
    grant(db, "first@nhs.net")
    grant(db, "second@nhs.net")
    state.fail_next = 10
    deliver_all(db, [hook], worker="w1", clock=clock)
    clock.advance(seconds=2)
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert report.failed == 1
    clock.advance(seconds=3600)
    deliver_all(db, [hook], worker="w1", clock=clock)
    assert state.posts == 2  # failed: nothing more is tried, the second waits
    (shown,) = status(db, [hook])
    assert (shown["failed"], shown["pending"], shown["next_cursor"]) == (1, 1, 1)
    state.fail_next = 0
    assert retry_failed(db, "portal", clock.now()) == 1
    report = deliver_all(db, [hook], worker="w1", clock=clock)
    assert report.sent == 2
    assert [d["email"] for d in state.taken] == ["first@nhs.net", "second@nhs.net"]


def test_a_wrong_secret_is_refused_by_the_receiver(
    db: Database, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    hook = WebhookConfig(name="portal", url=url, secret="not-the-secret", max_attempts=1)
    grant(db, "someone@nhs.net")
    report = deliver_all(db, [hook], worker="w1", clock=FixedClock(datetime.now(UTC)))
    assert report.failed == 1 and state.refused == 1 and state.taken == []


def test_a_stale_or_altered_request_does_not_verify() -> None:
    from service.webhooks import sign

    body = b'{"event_id":1}'
    signature = sign(SECRET, 1_000_000, body)
    assert verify_signature(SECRET, body, "1000000", signature, now=1_000_010)
    assert not verify_signature(SECRET, body, "1000000", signature, now=1_000_000 + 3600)
    assert not verify_signature(SECRET, body + b" ", "1000000", signature, now=1_000_010)
    assert not verify_signature(SECRET, body, "1000001", signature, now=1_000_010)


def test_erasure_waits_until_every_receiver_has_the_persons_changes(
    db: Database, db_url: str, receiver: tuple[Receiver, str], tmp_path
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    state, url = receiver
    config = tmp_path / "pcse.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n\n[storage]\nraw_dir = "{tmp_path / "raw"}"\n\n'
        f'[[webhooks]]\nname = "portal"\nurl = "{url}"\nsecret = "{SECRET}"\n',
        encoding="utf-8",
    )
    grant(db, "leaver@nhs.net")
    with db.transaction() as session:
        directory.deactivate_person(session, email="leaver@nhs.net", actor="test", reason="left")

    def pcse(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "pcse"), "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    erase = ("person", "erase", "leaver@nhs.net", "--by", "dpo", "--reason", "request 7")
    refused = pcse(*erase)
    assert refused.returncode == 1 and "have not yet reached every webhook" in refused.stderr
    sent = pcse("directory", "webhooks", "send", "--json")
    assert json.loads(sent.stdout)["sent"] == 2, sent.stderr
    assert [d["action"] for d in state.taken] == ["grant", "revoke"]
    assert state.taken[1]["email"] == "leaver@nhs.net"
    done = pcse(*erase, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["marker"].endswith("@erased.invalid")
    shown = json.loads(pcse("directory", "webhooks", "status", "--json").stdout)
    assert shown[0]["sent"] == 2 and shown[0]["failed"] == 0


def test_the_service_runs_the_purge_daily_and_the_webhooks_when_configured(
    sqlite_database: Database,
) -> None:
    from service.config import from_mapping
    from service.jobs import periodic_jobs

    plain = from_mapping({}, source="test")
    assert [j.name for j in periodic_jobs(sqlite_database, plain)][-1] == "purge"
    hooked = from_mapping(
        {
            "webhooks": [{"name": "p", "url": "https://x.example.nhs.uk/", "secret_env": "S"}],
            "schedule": {"webhook_seconds": 3},
        },
        source="test",
    )
    jobs = {j.name: j.seconds for j in periodic_jobs(sqlite_database, hooked)}
    assert jobs["webhooks"] == 3 and "purge" in jobs


class RawServer:
    """A TCP server in this process that answers each POST with `answer(socket)`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/pcse-changes"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.requests.append(_read_request(conn))
                with contextlib.suppress(OSError):
                    self.answer(self, conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() under way
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def grant_and_deliver(db: Database, url: str) -> DeliveryReport:
    """One change, delivered to the receiver at `url`."""
    grant(db, "jane@nhs.net")
    hook = WebhookConfig(name="portal", url=url, secret=SECRET, timeout_seconds=5)
    return deliver_all(db, [hook], worker="w1", clock=FixedClock(datetime.now(UTC)))


def test_the_answers_body_is_never_read(db: Database) -> None:
    """A receiver answering with an endless body (or a compressed one that would inflate
    without end) holds neither memory nor the job: the status line is all that counts."""
    size = 300 * 1024 * 1024

    def endless(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * (1 << 20)
        for _ in range(size >> 20):
            conn.sendall(block)
            server.sent += len(block)

    server = RawServer(endless)
    try:
        report = grant_and_deliver(db, server.url)
    finally:
        server.close()
    assert report.sent == 1
    assert server.sent < 64 * 1024 * 1024  # the connection was closed after the headers
    assert b"accept-encoding: identity" in server.requests[0].lower()


def test_a_plain_http_receiver_is_reached_directly_never_through_a_proxy(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain http is allowed to loopback only; the environment's proxy, wherever it is,
    would carry the signed body in clear."""

    def taken(_server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    proxy, receiving = RawServer(taken), RawServer(taken)
    proxy_url = proxy.url.rsplit("/", 1)[0]
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        report = grant_and_deliver(db, receiving.url)
    finally:
        proxy.close()
        receiving.close()
    assert report.sent == 1
    assert proxy.requests == [] and len(receiving.requests) == 1


def test_a_signature_beyond_ascii_does_not_verify() -> None:
    now = time.time()
    assert not verify_signature(SECRET, b"{}", str(int(now)), "sha256=\u00e9", now=now)


def test_two_workers_queueing_at_once_queue_each_change_once(db: Database) -> None:
    """Both workers' webhook jobs run at the same moment: neither fails, and each change is
    queued once for the receiver."""
    failures: list[str] = []
    for n in range(15):
        grant(db, f"user{n}@nhs.net")
        both = threading.Barrier(2)

        def queue(both: threading.Barrier = both) -> None:
            both.wait()
            try:
                enqueue(db, ["portal"], datetime.now(UTC))
            except Exception as exc:
                failures.append(type(exc).__name__)

        workers = [threading.Thread(target=queue) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    assert failures == []
    with db.transaction() as session:
        queued = session.scalars(select(WebhookDelivery.seq).order_by(WebhookDelivery.seq)).all()
        changes = session.scalars(select(RoleChange.seq).order_by(RoleChange.seq)).all()
    assert list(queued) == list(changes) and len(changes) == 15
