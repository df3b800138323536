"""A Message-ID makes two messages copies of one only when it can tell messages apart.

Broken mailers and copiers write "<>" or one fixed id on every message; taken at its word,
every message after the first was a "duplicate", linked to another's case and never read.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from intake.classify import telling_id
from intake.models import InboundMessage
from intake.pipeline import run_round
from service.config import Config
from tests.test_workflow_helpers import OUR, TRUSTED
from tests.test_workflow_mail import mail_config, mail_world
from workflow.env import WorkflowEnv
from workflow.handler import handle_message
from workflow.intake_link import WorkflowLink


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def message(
    message_id: str,
    nominee: str,
    *,
    received: str = "mx1",
    sender: str = "Mo Manager <manager@riverside.nhs.net>",
    subject: str = "New admin",
    extra: str = "",
) -> bytes:
    return (
        f"Received: from {received}.example by mx.nhs.net\r\n"
        f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=riverside.nhs.net\r\n"
        f"From: {sender}\r\nTo: {OUR}\r\n{extra}"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
        "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
        f"Please set up {nominee} as GPP admin for A81001.\r\n"
    ).encode()


def statuses(db: Database, config: Config, env: WorkflowEnv, *messages: bytes) -> list[str]:
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    for data in messages:
        box.add(mailbox.MaildirMessage(data))
    box.close()
    run_round(db, config, handle_message(env), cases=WorkflowLink())
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage.status).order_by(InboundMessage.id)))


@pytest.mark.parametrize("message_id", ["<>", "<scan>", "<@copier>", "< >"])
def test_messages_sharing_an_id_that_tells_nothing_are_each_read(
    message_id: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    first = message(message_id, "Jane Smith jane.smith@nhs.net")
    second = message(message_id, "Raj Patel raj.patel@nhs.net")
    assert statuses(db, config, env, first, second) == ["processed", "processed"]


def test_the_same_message_delivered_twice_is_still_a_copy(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    first = message("<abc@riverside.nhs.net>", "Jane Smith jane.smith@nhs.net")
    again = message("<abc@riverside.nhs.net>", "Jane Smith jane.smith@nhs.net", received="mx2")
    assert statuses(db, config, env, first, again) == ["processed", "duplicate"]


def test_the_same_message_in_another_case_of_its_sender_s_address_is_a_copy(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    first = message("<abc@riverside.nhs.net>", "Jane Smith jane.smith@nhs.net")
    again = message(
        "<abc@riverside.nhs.net>",
        "Jane Smith jane.smith@nhs.net",
        received="mx2",
        sender="Mo Manager <Manager@Riverside.nhs.net>",
    )
    assert statuses(db, config, env, first) == ["processed"]
    assert statuses(db, config, env, again) == ["processed", "duplicate"]


@pytest.mark.parametrize(
    "forged",
    [
        # Sent first by someone who learnt or guessed the id, as an automatic reply
        # (recorded, never answered, no case), from another sender.
        {"sender": "Eve <eve@example.com>", "extra": "Auto-Submitted: auto-replied\r\n"},
        # From the same address, forged, with another subject.
        {"subject": "Out of office", "extra": "Auto-Submitted: auto-replied\r\n"},
        # A copier's id, From and Subject, all of them what it writes on everything.
        {"extra": "Auto-Submitted: auto-replied\r\n"},
    ],
    ids=["another sender", "another subject", "the same sender and subject"],
)
def test_a_message_id_sent_first_by_another_does_not_swallow_the_real_message(
    forged: dict[str, str], db: Database, config: Config, env: WorkflowEnv
) -> None:
    first = message("<0000123@scanner.riverside.nhs.net>", "nobody", **forged)
    real = message("<0000123@scanner.riverside.nhs.net>", "Jane Smith jane.smith@nhs.net")
    assert statuses(db, config, env, first) == ["ignored"]
    assert statuses(db, config, env, real) == ["ignored", "processed"]


def test_telling_id() -> None:
    assert telling_id("<abc@riverside.nhs.net>") == "<abc@riverside.nhs.net>"
    assert [telling_id(v) for v in (None, "<>", "<abc>", "<@x>", "<x@>")] == [None] * 5
