"""Encoded words in what we write into headers never become headers or addresses of their own.

The email package decodes an encoded word (`=?utf-8?q?…?=`) as it parses a header value;
decoded, it may hold a line break, which the folding would write out as it is, or an "@"
that turns one address into another. Each shape below reached the SMTP server before.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.clock import FixedClock
from intake.mailparse import message_id_of
from notifications import outbox
from notifications.models import OutboxMessage
from notifications.samples import SAMPLE_CONTEXTS
from notifications.sender import send_pending
from tests.test_smtp_delivery import new_case, request_on
from workflow.env import WorkflowEnv
from workflow.mail import enqueue

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONTEXT = SAMPLE_CONTEXTS["acknowledgement"]


def env() -> WorkflowEnv:
    return WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=100)


@pytest.mark.parametrize(
    "address",
    [
        "=?utf-8?q?pcse.portalenquiries=40nhs.net?=@evil.example",  # reads as another address
        "pcse.portalenquiries@=?utf-8?q?nhs.net?=",  # reads as our own: a mail loop
        "=?utf-8?q?a=0D=0ARCPT_TO:x?=@evil.example",
    ],
)
def test_an_address_holding_an_encoded_word_is_never_sent_to(
    address: str, sqlite_database, smtp_sink, smtp_config
) -> None:
    with sqlite_database.transaction() as session:
        row = enqueue(
            session,
            env(),
            case=new_case(session),
            purpose="acknowledgement",
            to_address=address,
            to_name=None,
            context=CONTEXT,
        )
        assert row.status == "failed"
        row_id = row.id
    # A caseworker releases it anyway: the sender checks the address again.
    with sqlite_database.transaction() as session:
        outbox.retry(session, row_id, by="caseworker@nhs.net")

    report = send_pending(sqlite_database, smtp_config, clock=FixedClock(START))

    assert (report.sent, report.failed) == (0, 1)
    assert smtp_sink.messages == []
    with sqlite_database.transaction() as session:
        failed = session.get(OutboxMessage, row_id)
        assert failed is not None and failed.status == "failed"
        assert "not a valid email address" in (failed.last_error or "")


def sent_headers(smtp_sink) -> str:
    [message] = smtp_sink.messages
    return message.data.split(b"\r\n\r\n")[0].decode()


@pytest.mark.parametrize(
    "to_name",
    [
        "Pat =?utf-8?q?x=0D=0AReply-To:_attacker@evil.example=0D=0A?= Jones",
        "=?utf-8?b?UGF0DQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGU=?=",  # "Pat\r\nBcc: victim@…"
    ],
)
def test_a_display_name_that_decodes_to_a_line_break_adds_no_header(
    to_name: str, sqlite_database, smtp_sink, smtp_config
) -> None:
    with sqlite_database.transaction() as session:
        enqueue(
            session,
            env(),
            case=new_case(session),
            purpose="acknowledgement",
            to_address="pat.jones@riverside.nhs.net",
            to_name=to_name,
            context=CONTEXT,
        )

    report = send_pending(sqlite_database, smtp_config, clock=FixedClock(START))

    if report.sent:  # written some other way: then it must hold no header of its own
        headers = sent_headers(smtp_sink)
        assert "\r\nReply-To:" not in headers and "\r\nBcc:" not in headers
    else:
        assert report.failed == 1 and smtp_sink.messages == []


def test_a_message_id_that_decodes_to_a_line_break_is_not_threaded_into_headers(
    sqlite_database, smtp_sink, smtp_config
) -> None:
    raw = "<=?utf-8?q?x=0D=0AReply-To:_attacker=40evil.example=0D=0AX-Injected:_1?=@evil.example>"
    with sqlite_database.transaction() as session:
        case = new_case(session)
        parent = request_on(session, case, message_id_of(raw))
        enqueue(
            session,
            env(),
            case=case,
            purpose="acknowledgement",
            to_address="pat.jones@riverside.nhs.net",
            to_name="Pat",
            context=CONTEXT,
            reply_to=parent,
        )

    report = send_pending(sqlite_database, smtp_config, clock=FixedClock(START))

    # The acknowledgement still goes, unthreaded: the Message-ID is not one we can repeat.
    assert report.sent == 1
    headers = sent_headers(smtp_sink)
    assert "\r\nReply-To:" not in headers and "\r\nX-Injected:" not in headers
    assert "In-Reply-To" not in headers
