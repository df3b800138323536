"""MAIL, RCPT and DATA go in one write where the server offers PIPELINING (RFC 2920), and
one at a time where it does not; every answer in a pipelined group is checked, and a
refusal anywhere in it leaves the connection fit for the next message, or closed.

Two kinds of real server: the aiosmtpd sink, with and without PIPELINING, and a scripted
socket server that answers only what a test tells it to, to show what is on the wire.
"""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database
from notifications import smtp
from notifications.models import OutboxMessage
from notifications.sender import SendReport, send_pending
from notifications.settings import SmtpConfig
from notifications.sink import SmtpSink
from service.config import Config
from tests.test_smtp_delivery import START, queue
from workflow.env import WorkflowEnv

FROM = "pcse.portalenquiries@nhs.net"
TO = "pat.jones@riverside.nhs.net"
MESSAGE = b"Subject: hello\r\n\r\nA line.\r\n"


class Wire:
    """One side of a scripted SMTP conversation: lines read, answers written."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""
        self.lines: list[bytes] = []

    def line(self, timeout: float = 5.0) -> bytes | None:
        """The next line the client sent, or None if none came within `timeout`."""
        self.conn.settimeout(timeout)
        while b"\r\n" not in self.buffer:
            try:
                chunk = self.conn.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        self.lines.append(line)
        return line

    def say(self, *answers: str) -> None:
        self.conn.sendall("".join(f"{a}\r\n" for a in answers).encode())

    def greet(self, *, pipelining: bool) -> None:
        self.say("220 scripted ESMTP")
        assert (self.line() or b"").upper().startswith(b"EHLO")
        self.say("250-scripted", *(["250-PIPELINING"] if pipelining else []), "250 HELP")

    def message(self) -> bytes | None:
        """The message's lines up to the end-of-data line; None if it never came."""
        body: list[bytes] = []
        while (line := self.line()) != b".":
            if line is None:
                return None
            body.append(line)
        return b"\r\n".join(body)


class Scripted:
    """A one-connection server on a free loopback port, running a test's script."""

    def __init__(self, script: Callable[[Wire], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()
        port = self.listener.getsockname()[1]
        self.config = SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=3)

    def _serve(self, script: Callable[[Wire], None]) -> None:
        conn, _ = self.listener.accept()
        with conn:
            try:
                script(Wire(conn))
            except BaseException as exc:  # raised again in the test, by finish()
                self.errors.append(exc)

    def finish(self) -> None:
        """Wait for the script to end; raise what went wrong in it."""
        self.thread.join(timeout=10)
        self.listener.close()
        assert not self.thread.is_alive(), "the script did not end"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[Wire], None]], Scripted]]:
    servers: list[Scripted] = []

    def start(script: Callable[[Wire], None]) -> Scripted:
        servers.append(Scripted(script))
        return servers[-1]

    yield start
    for server in servers:
        server.thread.join(timeout=10)
        server.listener.close()


def answered(wire: Wire, *answers: str) -> None:
    """Greet offering PIPELINING, read the client's MAIL, RCPT and DATA, give `answers`."""
    wire.greet(pipelining=True)
    for _ in range(3):
        wire.line()
    wire.say(*answers)


def refused_recipient(server: Scripted) -> smtplib.SMTP:
    """Hand a message to `server`, which refuses its recipient with a 550; the connection."""
    conn = smtp.connect(server.config, None)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp.hand_over(conn, MESSAGE, FROM, TO)
    server.finish()
    assert refused.value.recipients == {TO: (550, b"5.1.1 no such user")}
    return conn


def test_with_pipelining_the_envelope_is_one_group_answered_together(scripted) -> None:
    # The server answers nothing until it holds all three commands: a client that waited
    # for the answer to MAIL would time out here.
    seen: dict[str, object] = {}

    def script(wire: Wire) -> None:
        wire.greet(pipelining=True)
        seen["group"] = [wire.line(), wire.line(), wire.line()]
        wire.say("250 sender ok", "250 recipient ok", "354 go ahead")
        seen["message"] = wire.message()
        wire.say("250 accepted")
        assert (wire.line() or b"").upper() == b"QUIT"
        wire.say("221 bye")

    server = scripted(script)
    conn = smtp.connect(server.config, None)
    smtp.hand_over(conn, MESSAGE, FROM, TO)
    smtp.verdict(conn)
    smtp.close(conn)
    server.finish()
    assert seen["group"] == [f"MAIL FROM:<{FROM}>".encode(), f"RCPT TO:<{TO}>".encode(), b"DATA"]
    assert seen["message"] == MESSAGE.rstrip(b"\r\n")


def test_without_pipelining_each_command_waits_for_its_answer(scripted) -> None:
    early: list[bytes | None] = []

    def script(wire: Wire) -> None:
        wire.greet(pipelining=False)
        for answer in ("250 sender ok", "250 recipient ok", "354 go ahead"):
            assert wire.line() is not None
            early.append(wire.line(timeout=0.3))  # nothing more may come before the answer
            wire.say(answer)
        assert wire.message() is not None
        wire.say("250 accepted")

    server = scripted(script)
    conn = smtp.connect(server.config, None)
    smtp.hand_over(conn, MESSAGE, FROM, TO)
    smtp.verdict(conn)
    conn.close()
    server.finish()
    assert early == [None, None, None]


def test_a_server_that_takes_data_after_refusing_the_recipient_gets_no_message(
    scripted,
) -> None:
    # RFC 2920 lets a server answer 354 to a pipelined DATA whatever came before; the
    # client must not then send anything that could be delivered, not even an empty message.
    after: dict[str, object] = {}

    def script(wire: Wire) -> None:
        answered(wire, "250 sender ok", "550 5.1.1 no such user", "354 go ahead")
        after["next"] = wire.line(timeout=3)

    conn = refused_recipient(scripted(script))
    assert after["next"] is None  # the connection was closed: no dot, no message
    assert conn.sock is None


def test_a_line_break_in_an_address_never_reaches_the_wire(scripted) -> None:
    received: list[bytes] = []

    def script(wire: Wire) -> None:
        wire.greet(pipelining=True)
        received.extend(line for line in [wire.line(timeout=1)] if line is not None)

    server = scripted(script)
    conn = smtp.connect(server.config, None)
    with pytest.raises(ValueError, match="line break"):
        smtp.hand_over(conn, MESSAGE, FROM, '"x\nDATA"@example.com')
    conn.close()
    server.finish()
    assert received == []


@pytest.fixture(params=[True, False], ids=["pipelining", "one at a time"])
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    with SmtpSink(pipelining=request.param) as running:
        yield running


def config_for(sink: SmtpSink) -> SmtpConfig:
    return SmtpConfig(host=sink.host, port=sink.port, timeout_seconds=5)


def test_the_sink_offers_pipelining_only_when_asked(sink: SmtpSink) -> None:
    conn = smtp.connect(config_for(sink), None)
    offered = conn.has_extn("pipelining")
    smtp.close(conn)
    assert offered is sink.handler.pipelining


@pytest.mark.parametrize(
    ("stage", "code", "error"),
    [
        ("mail", 550, smtplib.SMTPSenderRefused),
        ("mail", 451, smtplib.SMTPSenderRefused),
        ("rcpt", 550, smtplib.SMTPRecipientsRefused),
        ("rcpt", 452, smtplib.SMTPRecipientsRefused),
    ],
)
def test_a_refusal_in_the_envelope_is_reported_as_itself_and_the_next_message_goes(
    sink: SmtpSink, stage: str, code: int, error: type[smtplib.SMTPException]
) -> None:
    # In a pipelined group the later commands are answered 503 (no sender, no
    # recipient) after a refusal: the error names the refusal, not the 503.
    sink.fail_next(1, code, "refused for the test", stage=stage)
    conn = smtp.connect(config_for(sink), None)
    with pytest.raises(error) as raised:
        smtp.hand_over(conn, MESSAGE, FROM, TO)
    if isinstance(raised.value, smtplib.SMTPRecipientsRefused):
        assert raised.value.recipients == {TO: (code, b"refused for the test")}
    else:
        assert isinstance(raised.value, smtplib.SMTPSenderRefused)
        assert raised.value.smtp_code == code
    smtp.hand_over(conn, MESSAGE, FROM, TO)
    smtp.verdict(conn)
    smtp.close(conn)
    assert len(sink.messages) == 1 and sink.messages[0].rcpt_tos == (TO,)


def test_a_refused_message_leaves_the_connection_fit_for_the_next(sink: SmtpSink) -> None:
    sink.fail_next(1, 554, "5.6.0 refused for the test", stage="data")
    conn = smtp.connect(config_for(sink), None)
    smtp.hand_over(conn, MESSAGE, FROM, TO)
    with pytest.raises(smtplib.SMTPDataError) as raised:
        smtp.verdict(conn)
    assert raised.value.smtp_code == 554
    smtp.hand_over(conn, MESSAGE, FROM, TO)
    smtp.verdict(conn)
    smtp.close(conn)
    assert len(sink.messages) == 1


def test_a_421_in_the_group_closes_the_connection(sink: SmtpSink) -> None:
    sink.refuse_for(60)
    conn = smtp.connect(config_for(sink), None)
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.hand_over(conn, MESSAGE, FROM, TO)
    assert refused.value.smtp_code == 421
    assert conn.sock is None
    assert sink.messages == []


def test_messages_in_a_row_over_one_pipelined_connection_all_arrive(sink: SmtpSink) -> None:
    conn = smtp.connect(config_for(sink), None)
    for n in range(20):
        smtp.hand_over(conn, MESSAGE.replace(b"hello", f"hello {n}".encode()), FROM, TO)
        smtp.verdict(conn)
    smtp.close(conn)
    subjects = [m.message()["Subject"] for m in sink.messages]
    assert subjects == [f"hello {n}" for n in range(20)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one at a time"])
def test_a_refusal_then_a_hang_up_is_reported_as_the_refusal(scripted, pipelining: bool) -> None:
    # A 550 for the recipient fails the row for good; the hang-up after it must not turn
    # it into a lost connection, retried for a day.
    def script(wire: Wire) -> None:
        wire.greet(pipelining=pipelining)
        if pipelining:
            for _ in range(3):
                wire.line()
            wire.say("250 sender ok", "550 5.1.1 no such user")
        else:
            wire.line()
            wire.say("250 sender ok")
            wire.line()
            wire.say("550 5.1.1 no such user")

    refused_recipient(scripted(script))


def sent_rows(database: Database) -> dict[int, tuple[str, int, str | None]]:
    with database.transaction() as session:
        rows = session.scalars(select(OutboxMessage))
        return {r.id: (r.status, r.attempts, r.last_error) for r in rows}


def send_through(
    scripted, database: Database, count: int, script: Callable[[Wire], None]
) -> tuple[list[int], SendReport]:
    """Queue `count` replies and send them to a server running `script`."""
    env = WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=10_000)
    ids = queue(database, env, count)
    server = scripted(script)
    report = send_pending(database, Config(smtp=server.config), clock=FixedClock(START))
    server.finish()
    return ids, report


def test_a_connection_closed_with_a_refusal_does_not_charge_the_next_message(
    scripted, sqlite_database: Database
) -> None:
    def script(wire: Wire) -> None:
        answered(wire, "250 sender ok", "550 5.1.1 no such user", "354 go ahead")
        wire.line(timeout=2)  # cut off: nothing more comes

    (first, second), report = send_through(scripted, sqlite_database, 2, script)
    rows = sent_rows(sqlite_database)
    assert rows[first] == ("failed", 1, "550 5.1.1 no such user")
    assert rows[second] == ("pending", 0, None)  # never offered to a server: no try counted
    assert report.error and "closed the connection" in report.error


def test_a_garbled_answer_after_a_temporary_refusal_keeps_it_temporary(
    scripted, sqlite_database: Database
) -> None:
    def script(wire: Wire) -> None:
        answered(wire, "250 sender ok", "451 4.3.0 try later", "503 " + "x" * 9000)
        wire.line(timeout=1)

    [only], _ = send_through(scripted, sqlite_database, 1, script)
    assert sent_rows(sqlite_database)[only] == ("pending", 1, "451 4.3.0 try later")


def test_a_reset_refused_after_a_refusal_closes_the_connection(
    scripted, sqlite_database: Database
) -> None:
    # Left open, the refused transaction would make the next message's MAIL a "503 nested
    # MAIL", and that message would be failed for good through no fault of its own.
    def script(wire: Wire) -> None:
        answered(wire, "250 sender ok", "450 4.2.1 mailbox busy", "503 5.5.1 no recipients")
        assert (wire.line() or b"").upper() == b"RSET"
        wire.say("421 4.3.2 closing")
        wire.line(timeout=2)

    (first, second), _ = send_through(scripted, sqlite_database, 2, script)
    rows = sent_rows(sqlite_database)
    assert rows[first] == ("pending", 1, "450 4.2.1 mailbox busy")
    assert rows[second] == ("pending", 0, None)
