"""Automatic mail that the loop checks missed, read through a whole round: no case, no
acknowledgement. Each was read as a new request, opened a case and was answered, and an
automatic sender answering back would have looped. The corpus holds one of each too
(tests/corpus/mail: auto-submitted-notification, precedence-with-comment, x-loop,
own-plus-address-loop, outlook-suppressing-auto-replies)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from intake.pipeline import run_round
from service.config import Config
from tests.test_lone_surrogates import deliver
from tests.test_workflow_helpers import OUR, TRUSTED
from tests.test_workflow_mail import MANAGER, mail_config, mail_world, sent
from workflow.env import WorkflowEnv
from workflow.handler import handle_message
from workflow.intake_link import WorkflowLink
from workflow.models import Case

REQUEST = b"Please set up Jane Smith, jane.smith@nhs.net, as GPP admin for A81001."


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def request(extra: bytes, sender: bytes = MANAGER[1].encode()) -> bytes:
    return (
        b"Authentication-Results: " + TRUSTED.encode() + b"; dmarc=pass "
        b"header.from=" + sender.split(b"@")[1] + b"\r\n"
        b"From: Mo Manager <" + sender + b">\r\nTo: " + OUR.encode() + b"\r\n"
        b"Subject: GPP admin request\r\nMessage-ID: <loop@riverside.nhs.net>\r\n"
        b"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n" + extra + b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + REQUEST + b"\r\n"
    )


def cases(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Case)) or 0


@pytest.mark.parametrize(
    "mail",
    [
        request(b"Auto-Submitted: notification\r\n"),
        request(b'Auto-Submitted: Auto-Generated; owner-email="x@y"\r\n'),
        request(b"Precedence: Bulk (list)\r\n"),
        request(b"Precedence: junk; x\r\n"),
        request(b"X-Loop: helpdesk@riverside.nhs.net\r\n"),
        request(b"", sender=OUR.replace("@", "+loop@").encode()),
    ],
    ids=["notification", "auto-generated-params", "bulk-comment", "junk-params", "x-loop", "ours"],
)
def test_automatic_mail_opens_no_case_and_gets_no_answer(
    db: Database, config: Config, env: WorkflowEnv, mail: bytes
) -> None:
    deliver(config, mail)
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.processing.failed == 0
    assert cases(db) == 0
    assert sent(db, "acknowledgement") == []


@pytest.mark.parametrize(
    "extra",
    [
        b"X-Auto-Response-Suppress: All\r\n",  # Outlook, on mail a person wrote
        b"Auto-Submitted: no (typed by a person)\r\n",
        b"Auto-Submitted: NO\r\n",
        # An empty value says nothing: read as no header.
        b"Auto-Submitted:\r\n",
        b"Auto-Submitted:   \r\n",
        b"Auto-Submitted: (typed by a person)\r\n",
        b"Precedence: normal\r\n",
    ],
)
def test_mail_a_person_wrote_is_still_a_request(
    db: Database, config: Config, env: WorkflowEnv, extra: bytes
) -> None:
    deliver(config, request(extra))
    run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert cases(db) == 1
    assert [m.to_address for m in sent(db, "acknowledgement")] == [MANAGER[1]]
