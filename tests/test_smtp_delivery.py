"""Delivery to a real aiosmtpd server: every template, headers, failures, retries, races."""

from __future__ import annotations

import re
import smtplib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import FixedClock
from core.db import Database
from intake.models import InboundMessage
from notifications import headers, outbox, smtp
from notifications.models import OutboxMessage
from notifications.purposes import PURPOSES
from notifications.samples import SAMPLE_CONTEXTS
from notifications.sender import SendReport, backoff, send_pending
from notifications.sink import SmtpSink
from service.config import Config
from workflow.cases import create_case
from workflow.env import WorkflowEnv
from workflow.mail import case_mail, enqueue
from workflow.models import Case, Organisation

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQUESTER = "pat.jones@riverside.nhs.net"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def env(clock: FixedClock) -> WorkflowEnv:
    # A high cap: these tests send many messages to one address on purpose.
    return WorkflowEnv(clock=clock, max_replies_per_hour=10_000)


def new_case(session: Session) -> Case:
    if session.scalar(select(Organisation).where(Organisation.code == "A81001")) is None:
        session.add(
            Organisation(
                code="A81001", name="The Riverside Surgery", type="gp_practice", icb_code="QHM"
            )
        )
    return create_case(
        session,
        kind="gpp_admin_form",
        requester=REQUESTER,
        requester_name="Pat Jones",
        organisation_code="A81001",
        now=START,
    )


def queue(database: Database, env: WorkflowEnv, n: int, **kwargs) -> list[int]:
    """Queue `n` acknowledgements on one case; returns the row ids."""
    with database.transaction() as session:
        case = new_case(session)
        rows = [
            enqueue(
                session,
                env,
                purpose="acknowledgement",
                to_address=kwargs.get("to_address", f"person{i}@example.org"),
                to_name=kwargs.get("to_name", f"Person {i}"),
                context=SAMPLE_CONTEXTS["acknowledgement"],
                case=case,
            )
            for i in range(n)
        ]
        return [r.id for r in rows]


def rows(database: Database) -> dict[int, OutboxMessage]:
    with database.transaction() as session:
        return {r.id: r for r in session.scalars(select(OutboxMessage))}


def parts(msg: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in msg.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    }


def test_every_template_is_delivered_with_its_headers(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        ref = case.ref
        queued = {
            purpose: enqueue(
                session,
                env,
                purpose=purpose,
                to_address=REQUESTER,
                to_name="Pat Jones",
                context=SAMPLE_CONTEXTS[purpose],
                case=case,
            )
            for purpose in PURPOSES
        }
        expected = {
            purpose: (row.message_id, row.subject, row.body_text, row.body_html)
            for purpose, row in queued.items()
        }
    report = send_pending(database, smtp_config, clock=clock)
    assert report == SendReport(sent=len(PURPOSES), failed=0, pending=0)
    received = {r.message()["Message-ID"]: r for r in smtp_sink.messages}
    assert len(received) == len(PURPOSES)
    for purpose, (message_id, subject, text, html) in expected.items():
        item = received[message_id]
        msg = item.message()
        assert item.rcpt_tos == (REQUESTER,)
        assert item.mail_from == "pcse.portalenquiries@nhs.net"
        # A long subject is folded onto the next line; unfolded it is the same.
        assert msg["Subject"].strip() == subject and f"[{ref}]" in subject, purpose
        assert msg["To"] == f"Pat Jones <{REQUESTER}>"
        assert msg["From"] == "PCSE Online user management <pcse.portalenquiries@nhs.net>"
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["X-Auto-Response-Suppress"] == "All"
        assert msg["Date"] is not None
        assert msg.get_content_type() == "multipart/alternative"
        body = parts(msg)
        assert ref in body["text/plain"] and ref in body["text/html"]
        # What arrives decodes to exactly what was rendered.
        assert body["text/plain"].replace("\r\n", "\n") == text
        assert body["text/html"] == html
    states = rows(database)
    assert {r.status for r in states.values()} == {"sent"}
    assert all(r.sent_at is not None and r.attempts == 1 for r in states.values())


def request_on(session, case, message_id: str | None) -> InboundMessage:
    """The request a reply answers, in the ledger and on `case`."""
    parent = InboundMessage(
        mailbox="enquiries",
        uidvalidity=1,
        uid=1,
        message_id=message_id,
        sha256="0" * 64,
        size=10,
        received_at=START,
        case_id=case.id,
    )
    session.add(parent)
    session.flush()
    return parent


def test_a_reply_is_threaded_on_the_wire(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        parent = request_on(session, case, "<form-123@riverside.nhs.net>")
        enqueue(
            session,
            env,
            purpose="acknowledgement",
            to_address=REQUESTER,
            to_name=None,
            context=SAMPLE_CONTEXTS["acknowledgement"],
            case=case,
            reply_to=parent,
        )
    send_pending(database, smtp_config, clock=clock)
    msg = smtp_sink.wait_for(1)[0].message()
    assert msg["In-Reply-To"] == "<form-123@riverside.nhs.net>"
    assert msg["References"] == "<form-123@riverside.nhs.net>"
    assert msg["To"] == REQUESTER


def test_the_blank_form_a_reply_asks_for_is_attached(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    from notifications.blank_forms import blank_form_path

    name = "user-admin-request-form.pdf"
    with database.transaction() as session:
        enqueue(
            session,
            env,
            purpose="needs_info",
            to_address=REQUESTER,
            to_name=None,
            context=SAMPLE_CONTEXTS["needs_info"],
            case=new_case(session),
            attachments=[name],
        )
    assert send_pending(database, smtp_config, clock=clock).sent == 1
    msg = smtp_sink.wait_for(1)[0].message()
    assert msg.get_content_type() == "multipart/mixed"
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == [name]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == blank_form_path(name).read_bytes()
    assert "text/plain" in parts(msg) and "text/html" in parts(msg)


def test_a_missing_blank_form_fails_the_row_with_the_reason(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    with database.transaction() as session:
        row = enqueue(
            session,
            env,
            purpose="needs_info",
            to_address=REQUESTER,
            to_name=None,
            context=SAMPLE_CONTEXTS["needs_info"],
            case=new_case(session),
            attachments=["no-such-form.pdf"],
        )
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.failed) == (0, 1)
    assert "no-such-form.pdf" in rows(database)[row.id].last_error
    assert smtp_sink.messages == []


def test_server_down_then_up_loses_nothing_and_doubles_nothing(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    ids = queue(database, env, 5)
    smtp_sink.stop()
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.failed, report.pending) == (0, 0, 5)
    assert "Could not connect to or sign in" in report.error
    for row in rows(database).values():
        assert row.status == "pending" and row.attempts == 1
        assert "Could not connect to or sign in" in row.last_error
        assert row.next_attempt_at.replace(tzinfo=UTC) == START + backoff(1)
    smtp_sink.start()
    # Not due yet: the backoff holds them back.
    assert send_pending(database, smtp_config, clock=clock).sent == 0
    clock.advance(minutes=2)
    assert send_pending(database, smtp_config, clock=clock) == SendReport(5, 0, 0)
    assert send_pending(database, smtp_config, clock=clock) == SendReport(0, 0, 0)
    got = Counter(r.message()["Message-ID"] for r in smtp_sink.messages)
    assert set(got) == {r.message_id for r in rows(database).values()}
    assert set(got.values()) == {1}
    assert sorted(rows(database)) == sorted(ids)


@pytest.mark.parametrize("where", ["mail", "end of data"])
def test_refused_mid_batch_retries_that_row_and_gives_back_the_rest(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
    where: str,
) -> None:
    queue(database, env, 4)
    if where == "mail":
        smtp_sink.refuse_for(60)
    else:  # the server gives up after taking the whole message
        smtp_sink.fail_next(1, 421, "4.3.2 Shutting down", stage="data")
    report = send_pending(database, smtp_config, clock=clock)
    assert report.sent == 0 and report.pending == 4 and "421" in report.error
    attempts = sorted(r.attempts for r in rows(database).values())
    assert attempts == [0, 0, 0, 1]  # only the row that met the 421 counts a try
    smtp_sink.reset_faults()
    assert send_pending(database, smtp_config, clock=clock).sent == 3
    clock.advance(minutes=2)
    assert send_pending(database, smtp_config, clock=clock).sent == 1
    assert len(smtp_sink.messages) == 4
    assert len({r.message()["Message-ID"] for r in smtp_sink.messages}) == 4


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_4xx_is_retried_with_backoff_and_a_5xx_fails_with_the_answer(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
    stage: str,
) -> None:
    first, second, third = queue(database, env, 3)
    smtp_sink.fail_next(1, 451, "4.7.1 Greylisted, try again later", stage=stage)
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.failed, report.pending) == (2, 0, 1)
    row = rows(database)[first]
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error == "451 4.7.1 Greylisted, try again later"
    assert row.next_attempt_at.replace(tzinfo=UTC) == START + timedelta(minutes=1)

    clock.advance(minutes=1)
    smtp_sink.fail_next(1, 550, "5.1.1 No such user here", stage=stage)
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.failed, report.pending) == (0, 1, 0)
    row = rows(database)[first]
    assert row.status == "failed" and row.attempts == 2
    assert row.last_error == "550 5.1.1 No such user here"
    delivered = [r.message()["Message-ID"] for r in smtp_sink.messages]
    assert sorted(delivered) == sorted(rows(database)[i].message_id for i in (second, third))


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert backoff(20) == timedelta(hours=1)


def test_a_name_with_a_newline_and_html_cannot_inject_headers(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    evil = 'Pat\r\nBcc: victim@example.org\r\n\r\n<b onclick="x()">Jones</b>'
    with database.transaction() as session:
        # Below the workflow, which writes back no display name that is not a name.
        outbox.enqueue(
            session,
            env,
            purpose="approval_request",
            to_address="approver@riverside.nhs.net",
            to_name=evil,
            case=case_mail(session, new_case(session)),
            context=SAMPLE_CONTEXTS["approval_request"] | {"requested_by": evil},
        )
    assert send_pending(database, smtp_config, clock=clock).sent == 1
    item = smtp_sink.wait_for(1)[0]
    assert item.rcpt_tos == ("approver@riverside.nhs.net",)
    head = item.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "Bcc" not in [line.split(":", 1)[0] for line in head.splitlines()]
    msg = item.message()
    assert msg["Bcc"] is None
    assert msg["To"].addresses[0].addr_spec == "approver@riverside.nhs.net"
    assert msg["To"].addresses[0].display_name == (
        'Pat Bcc: victim@example.org <b onclick="x()">Jones</b>'
    )
    body = parts(msg)
    assert "<b onclick" not in body["text/html"]
    assert "&lt;b onclick=&#34;x()&#34;&gt;Jones&lt;/b&gt;" in body["text/html"]
    assert '<b onclick="x()">Jones</b>' in body["text/plain"]


def test_a_non_ascii_name_is_encoded_not_mangled(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    with database.transaction() as session:
        enqueue(
            session,
            env,
            purpose="outcome_expired",
            to_address=REQUESTER,
            to_name="Zoë O’Brien, Practice Manager",
            context={},
            case=new_case(session),
        )
    send_pending(database, smtp_config, clock=clock)
    item = smtp_sink.wait_for(1)[0]
    assert b"=?utf-8?" in item.data.split(b"\r\n\r\n", 1)[0]
    to = item.message()["To"].addresses[0]
    assert to.display_name == "Zoë O’Brien, Practice Manager"
    assert to.addr_spec == REQUESTER


def test_the_hourly_cap_holds_the_sixth_reply_back_from_the_wire(
    database: Database,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    env = WorkflowEnv(clock=clock)  # the default cap of five
    queue(database, env, 6, to_address=REQUESTER, to_name="Pat Jones")
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.pending) == (5, 0)
    assert len(smtp_sink.messages) == 5
    assert sorted(r.status for r in rows(database).values()) == ["held"] + ["sent"] * 5


def test_nothing_is_sent_to_our_own_address(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    queue(database, env, 2, to_address="pcse.portalenquiries@nhs.net")
    assert send_pending(database, smtp_config, clock=clock) == SendReport(0, 0, 0)
    assert smtp_sink.messages == []
    assert {r.status for r in rows(database).values()} == {"dismissed"}


def test_a_sender_that_died_mid_batch_is_taken_over_after_its_lease(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    from notifications import claims
    from notifications.sender import LEASE

    queue(database, env, 3)
    claimed = claims.claim_due(database, worker="dead", now=clock.now(), limit=2, lease=LEASE)
    assert len(claimed) == 2
    assert send_pending(database, smtp_config, clock=clock).sent == 1
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert send_pending(database, smtp_config, clock=clock).sent == 2
    # The dead sender's late bookkeeping can no longer touch rows it lost.
    assert claims.mark_sent(database, [claimed[0].id], worker="dead", now=clock.now()) == 0
    assert len({r.message()["Message-ID"] for r in smtp_sink.messages}) == 3


def test_two_senders_racing_never_send_a_row_twice(
    db_url: str,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    setup = Database(db_url)
    ids = queue(setup, env, 120)
    setup.dispose()
    smtp_config.smtp.batch_size = 10
    reports: list[SendReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sender() -> None:
        db = Database(db_url)  # each sender with its own engine, as two processes would be
        try:
            start.wait()
            reports.append(send_pending(db, smtp_config))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(r.sent for r in reports) == 120
    assert all(r.sent > 0 for r in reports), "both senders should have taken a share"
    got = Counter(r.message()["Message-ID"] for r in smtp_sink.messages)
    assert len(got) == 120 and set(got.values()) == {1}
    check = Database(db_url)
    assert {r.status for r in rows(check).values()} == {"sent"}
    assert sorted(rows(check)) == sorted(ids)
    check.dispose()


def test_a_bad_address_released_by_a_caseworker_fails_again_without_stopping_the_rest(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    from workflow.mail import retry

    with database.transaction() as session:
        bad = enqueue(
            session,
            env,
            purpose="outcome_expired",
            case=new_case(session),
            to_address="pat@riverside.nhs.net\r\nBcc: victim@example.org",
            to_name=None,
            context={},
        )
    assert bad.status == "failed"
    with database.transaction() as session:
        retry(session, bad.id, by="cw@pcse.nhs.uk")
    queue(database, env, 2)
    report = send_pending(database, smtp_config, clock=clock)
    assert (report.sent, report.failed, report.pending) == (2, 1, 0)
    assert "not a valid email address" in rows(database)[bad.id].last_error
    assert all("victim" not in "".join(r.rcpt_tos) for r in smtp_sink.messages)


def test_lines_that_look_like_smtp_commands_stay_in_the_body(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    reason = "First line\n.\nRCPT TO:<victim@example.org>\n..two dots\n.one dot"
    with database.transaction() as session:
        row = enqueue(
            session,
            env,
            purpose="outcome_rejected",
            to_address=REQUESTER,
            to_name=None,
            context={"reason": reason},
            case=new_case(session),
        )
        text = row.body_text
    queue(database, env, 1)  # a second message on the same connection, after it
    assert send_pending(database, smtp_config, clock=clock).sent == 2
    first, second = smtp_sink.wait_for(2)
    assert first.rcpt_tos == (REQUESTER,)
    assert parts(first.message())["text/plain"].replace("\r\n", "\n") == text
    assert "\n.\nRCPT TO:<victim@example.org>\n..two dots\n.one dot\n" in text
    assert second.rcpt_tos == ("person0@example.org",)


def test_an_address_beyond_ascii_is_failed_with_the_reason_not_sent(
    database: Database,
    env: WorkflowEnv,
    clock: FixedClock,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    with database.transaction() as session:
        row = enqueue(
            session,
            env,
            purpose="outcome_expired",
            to_address="zoë@example.org",
            to_name="Zoë",
            context={},
            case=new_case(session),
        )
        assert row.status == "failed"
        assert "not a valid email address" in row.last_error
    assert send_pending(database, smtp_config, clock=clock) == SendReport(0, 0, 0)
    assert smtp_sink.messages == []


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"\r", b"a", b" "])).map(b"".join))
def test_dot_stuffing_doubles_the_dot_that_starts_each_line(data: bytes) -> None:
    assert smtp.dot_stuffed(data) == re.sub(rb"^\.", b"..", data, flags=re.MULTILINE)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.from_regex(
            r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9-]+)*@[a-z0-9-]+(\.[a-z0-9-]+)+",
            fullmatch=True,
        ),
        st.text(max_size=40),
    )
)
def test_addresses_go_into_mail_and_rcpt_as_smtplib_would_put_them(address: str) -> None:
    if headers.is_dot_atom_address(address):
        assert smtp.path(address) == smtplib.quoteaddr(address)


def cleaned_by_the_email_package(value: str) -> str | None:
    """clean_address without its shortcut for dot-atom addresses."""
    if headers._CONTROLS.search(value):
        return None
    candidate = value.strip().lower()
    if not headers.plain_address_shape(candidate):
        return None
    try:
        parsed = Address(addr_spec=candidate)
    except (HeaderParseError, ValueError, IndexError):
        return None
    return candidate if parsed.addr_spec == candidate else None


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.from_regex(
            r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,12}@[A-Za-z0-9=?.\-]{1,12}", fullmatch=True
        ),
        st.from_regex(r'[ "()<>\[\]\\,;:a-z.=?@-]{1,16}@[a-z.=?-]{1,10}', fullmatch=True),
        st.text(max_size=40),
    )
)
@example("=?utf-8?q?ours=40nhs.net?=@evil.example")  # an encoded word, in atext
@example("=?utf-8?q?a?=@x.nhs.net")
@example("a=?b@c.nhs.net")
def test_a_dot_atom_address_is_cleaned_as_the_email_package_would_clean_it(value: str) -> None:
    assert headers.clean_address(value) == (cleaned_by_the_email_package(value) if value else None)
