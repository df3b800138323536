"""Mail servers that answer oddly: no email sent twice, none failed that was taken, none
stuck where nobody sees it, and a refusal of our own sender address not taken out on the
queue. Real aiosmtpd servers, or a scripted server on a real socket; real databases."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pytest
from sqlalchemy import select

from caseworker.queue import QueueFilters, _outbox_query
from core.clock import FixedClock
from core.db import Database
from core.errors import ConfigError
from notifications import claims
from notifications.models import OutboxMessage
from notifications.sender import LEASE, send_pending
from notifications.settings import MAX_SMTP_TIMEOUT, SMTP_STEPS_PER_MESSAGE
from notifications.sink import SmtpSink
from service.config import Config, SmtpConfig, from_mapping
from tests.test_smtp_delivery import START, queue
from workflow.env import WorkflowEnv
from workflow.mail import retry


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def env(clock: FixedClock) -> WorkflowEnv:
    return WorkflowEnv(clock=clock, max_replies_per_hour=10_000)


def all_rows(database: Database) -> list[OutboxMessage]:
    with database.transaction() as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        session.expunge_all()
        return rows


def assert_left_unconfirmed(database: Database, row_id: int) -> None:
    """Sent, its claim cleared, flagged for a person: counted, listed, and retryable."""
    with database.transaction() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        assert (row.status, row.claimed_by, row.last_error) == ("sent", None, claims.UNANSWERED)
        assert claims.count_unconfirmed(session) == 1
        assert [r.id for r in session.scalars(_outbox_query(QueueFilters()))] == [row_id]
    with database.transaction() as session:
        retry(session, row_id, by="cw@pcse.nhs.uk")  # a person may send it again


# ------------------------------------------------------------------ a scripted server


class ScriptedServer:
    """A loopback SMTP server whose every connection runs `script(server, reader, conn)`."""

    def __init__(self, script: Callable[[ScriptedServer, BinaryIO, socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.messages: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        # OSError: the sender hung up.
        with conn, conn.makefile("rb") as reader, contextlib.suppress(OSError):
            self.script(self, reader, conn)

    def take_message(self, reader: BinaryIO, conn: socket.socket) -> bool:
        """Greet, take MAIL, RCPT and DATA (pipelined) and the message up to its dot."""
        conn.sendall(b"220 odd ESMTP\r\n")
        reader.readline()  # EHLO
        conn.sendall(b"250-odd\r\n250-PIPELINING\r\n250 HELP\r\n")
        for _ in range(3):
            line = reader.readline()
            if not line or line.upper().startswith(b"QUIT"):
                return False
        conn.sendall(b"250 ok\r\n250 ok\r\n354 go\r\n")
        body = []
        while (line := reader.readline()) not in (b".\r\n", b""):
            body.append(line)
        self.messages.append(b"".join(body))
        return True

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Callable[[ScriptedServer, BinaryIO, socket.socket], None]) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def config_for(port: int, timeout: float = 3) -> Config:
    return Config(smtp=SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=timeout))


# ------------------------------------------------------------------ no answer to the dot


def test_a_server_slow_to_answer_the_end_of_message_gets_it_once(
    database: Database, env: WorkflowEnv, clock: FixedClock
) -> None:
    """The server takes the message and answers 250 after the sender stopped waiting. Sent
    again at each retry, it would arrive again each time; it stays sent, flagged."""
    sink = SmtpSink().start()
    original = sink.handler.handle_DATA

    async def slow_data(server, session, envelope):  # type: ignore[no-untyped-def]
        answer = await original(server, session, envelope)  # kept: delivered
        await asyncio.sleep(1.6)
        return answer

    sink.handler.handle_DATA = slow_data  # type: ignore[method-assign]
    config = Config(smtp=SmtpConfig(host=sink.host, port=sink.port, timeout_seconds=1))
    try:
        [row_id] = queue(database, env, 1)
        first = send_pending(database, config, clock=clock)
        for _ in range(2):
            clock.advance(hours=1)
            send_pending(database, config, clock=clock)
        received = Counter(r.message()["Message-ID"] for r in sink.messages)
    finally:
        sink.stop()
    assert list(received.values()) == [1]
    assert first.error is not None and "gave no clear answer" in first.error
    assert all_rows(database)[0].attempts == 0  # not a failed try: it went
    assert_left_unconfirmed(database, row_id)


@pytest.mark.parametrize(
    "answer", [None, b"250 2.0.0 Queued " + b"x" * 9000, b"ok, queued", b"221 2.0.0 Closing"]
)
def test_no_readable_answer_after_the_dot_leaves_the_email_sent_and_flagged(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    scripted: Callable[..., ScriptedServer],
    answer: bytes | None,
) -> None:
    """The connection drops before the answer; the answer's line is longer than smtplib
    reads (it makes up "500 Line too long."); the answer has no number; the answer is 221,
    closing, which accepts nothing (RFC 5321 accepts a message with 250). The server has the
    whole message each time, and may deliver it: neither sent again nor failed."""

    def script(server: ScriptedServer, reader: BinaryIO, conn: socket.socket) -> None:
        if not server.take_message(reader, conn):
            return
        if answer is None:
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(answer + b"\r\n")
        reader.readline()

    server = scripted(script)
    queued = queue(database, env, 2)
    first = send_pending(database, config_for(server.port), clock=clock)
    clock.advance(minutes=5)
    second = send_pending(database, config_for(server.port), clock=clock)
    # One message a run (the connection is given up after it); each taken once.
    assert len(server.messages) == 2
    assert len({m.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in server.messages}) == 2
    for report in (first, second):
        assert (report.sent, report.failed) == (0, 0)
        assert report.error is not None and "gave no clear answer" in report.error
    rows = all_rows(database)
    assert [r.id for r in rows] == queued
    for row in rows:
        assert (row.status, row.claimed_by, row.last_error) == ("sent", None, claims.UNANSWERED)
    clock.advance(hours=2)
    send_pending(database, config_for(server.port), clock=clock)
    assert len(server.messages) == 2  # and never again unasked


def test_a_refusal_after_the_dot_is_still_read_as_one(
    database: Database, env: WorkflowEnv, clock: FixedClock, scripted: Callable[..., ScriptedServer]
) -> None:
    """A readable 5xx on an open connection is the server's refusal: failed, as before."""

    def script(server: ScriptedServer, reader: BinaryIO, conn: socket.socket) -> None:
        if server.take_message(reader, conn):
            conn.sendall(b"554 5.6.0 Message rejected\r\n")
            reader.readline()

    server = scripted(script)
    queue(database, env, 1)
    report = send_pending(database, config_for(server.port), clock=clock)
    [row] = all_rows(database)
    assert report.failed == 1
    assert (row.status, row.last_error) == ("failed", "554 5.6.0 Message rejected")


# ------------------------------------------------------------------ our sender refused


def test_our_sender_address_refused_stops_the_run_and_fails_nothing(
    database: Database, env: WorkflowEnv, clock: FixedClock
) -> None:
    """Exchange Online refuses MAIL FROM for reasons about the account (SendAsDenied, a
    submission quota): one row backs off, the rest are given back untried, and the run
    says why; once the account is put right, all of them go."""
    sink = SmtpSink().start()
    original = sink.handler.handle_MAIL

    async def refuse_mail(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        return "550 5.7.60 SMTP; Client does not have permissions to send as this sender"

    sink.handler.handle_MAIL = refuse_mail  # type: ignore[method-assign]
    config = Config(smtp=SmtpConfig(host=sink.host, port=sink.port, timeout_seconds=5))
    try:
        queue(database, env, 25)
        report = send_pending(database, config, clock=clock)
        statuses = Counter((r.status, r.attempts) for r in all_rows(database))
        sink.handler.handle_MAIL = original  # type: ignore[method-assign]
        clock.advance(minutes=2)
        after = send_pending(database, config, clock=clock)
    finally:
        sink.stop()
    assert report.error is not None and "refused our sender address" in report.error
    assert "5.7.60" in report.error and report.failed == 0
    assert statuses == {("pending", 1): 1, ("pending", 0): 24}
    assert after.sent == 25 and len(sink.messages) == 25


# ------------------------------------------------------------------ a claim left behind


def test_an_email_handed_over_by_a_sender_on_another_host_is_flagged_once_its_claim_lapses(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    """Another host (or this one's container, restarted under a new name) recorded the row
    as handed over and died before the server's answer. Once its lease has run out the row
    is flagged for a person, not kept claimed for good, unseen and not retryable."""
    [row_id] = queue(database, env, 1)
    other = "pcse-7f9c2d1e:7:deadbeef"
    [claimed] = claims.claim_due(database, worker=other, now=clock.now(), limit=10, lease=LEASE)
    marks = claims.keep_for_hand_overs(database)
    try:
        ours, _ = claims.mark_handed_over(
            marks, claimed.id, worker=other, now=clock.now(), confirm=None
        )
    finally:
        marks.close()
    assert ours
    send_pending(database, smtp_config, clock=clock)  # within its lease: left alone
    with database.transaction() as session:
        assert session.get(OutboxMessage, row_id).claimed_by == other  # type: ignore[union-attr]
    clock.advance(seconds=LEASE.total_seconds() + 1)  # lapsed, but it may be a slow sender
    send_pending(database, smtp_config, clock=clock)
    with database.transaction() as session:
        assert session.get(OutboxMessage, row_id).claimed_by == other  # type: ignore[union-attr]
    clock.advance(seconds=claims.LAPSED_FOR.total_seconds())
    report = send_pending(database, smtp_config, clock=clock)
    assert report.sent == 0 and smtp_sink.messages == []
    with database.transaction() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        assert (row.status, row.claimed_by, row.last_error) == ("sent", None, claims.UNCONFIRMED)
        assert claims.count_unconfirmed(session) == 1
        assert [r.id for r in session.scalars(_outbox_query(QueueFilters()))] == [row_id]
    with database.transaction() as session:
        retry(session, row_id, by="cw@pcse.nhs.uk")
    assert send_pending(database, smtp_config, clock=clock).sent == 1


# ------------------------------------------------------------------ the timeout and the lease


def test_the_longest_timeout_allowed_leaves_time_inside_the_lease() -> None:
    assert LEASE.total_seconds() > SMTP_STEPS_PER_MESSAGE * MAX_SMTP_TIMEOUT + 30


@pytest.mark.parametrize("timeout", [0, -1, MAX_SMTP_TIMEOUT + 0.5, 600])
def test_a_timeout_that_leaves_no_time_to_send_is_refused_at_start_up(timeout: float) -> None:
    with pytest.raises(ConfigError, match=r"timeout_seconds must be .* at most 80"):
        from_mapping({"smtp": {"timeout_seconds": timeout}})
    allowed = from_mapping({"smtp": {"timeout_seconds": MAX_SMTP_TIMEOUT}})
    assert allowed.smtp.timeout_seconds == MAX_SMTP_TIMEOUT


def test_a_sender_given_no_time_says_so_and_does_not_spin(
    database: Database, env: WorkflowEnv, clock: FixedClock, smtp_sink: SmtpSink
) -> None:
    """Settings built past the validation (a caller of its own): the run ends at once with
    the reason, the rows given back untried."""
    config = Config(
        smtp=SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, timeout_seconds=150, batch_size=2)
    )
    queue(database, env, 2)
    done = threading.Event()
    reports = []

    def run() -> None:
        reports.append(send_pending(database, config, clock=clock))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10)
    [report] = reports
    assert report.error is not None and "no time" in report.error
    assert [(r.status, r.attempts) for r in all_rows(database)] == [("pending", 0)] * 2
    assert smtp_sink.messages == []
