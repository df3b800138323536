"""Text that decodes to what no database will store: every message is still recorded.

UTF-7 ("+2D0-") and unicode-escape decode to lone surrogates, which neither driver will
write. One in a subject stopped every poll at the ledger, for that message and all after
it; one in a filename failed the message with an encoding error no caseworker could act on.
A charset name Python knows as a codec of bytes to bytes ("rot13") lost the body's text.
"""

from __future__ import annotations

import base64
import mailbox
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from intake import poller
from intake.charsets import decode_bytes, storable
from intake.ledger import HeaderFacts
from intake.models import InboundMessage
from intake.pipeline import run_round
from service.config import Config
from tests.test_workflow_helpers import OUR, TRUSTED
from tests.test_workflow_mail import CORPUS, MANAGER, mail_config, mail_world, sent, the_case
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
    number: int,
    subject: bytes,
    *,
    sender: bytes = b"Mo Manager",
    body: bytes = b"Please set up Jane Smith, jane.smith@nhs.net, as GPP admin for A81001.",
    charset: bytes = b"utf-8",
) -> bytes:
    return (
        b"Authentication-Results: " + TRUSTED.encode() + b"; dmarc=pass "
        b"header.from=riverside.nhs.net\r\n"
        b"From: " + sender + b" <manager@riverside.nhs.net>\r\nTo: " + OUR.encode() + b"\r\n"
        b"Subject: "
        + subject
        + b"\r\nMessage-ID: <m"
        + str(number).encode()
        + b"@riverside.nhs.net>\r\n"
        b"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=" + charset + b"\r\n\r\n" + body + b"\r\n"
    )


def form_message(filename_parameter: bytes) -> bytes:
    pdf = base64.encodebytes((CORPUS / "gpp-acroform.pdf").read_bytes())
    return (
        b"Authentication-Results: " + TRUSTED.encode() + b"; dmarc=pass "
        b"header.from=riverside.nhs.net\r\n"
        b"From: Mo Manager <manager@riverside.nhs.net>\r\nTo: " + OUR.encode() + b"\r\n"
        b"Subject: GPP form\r\nMessage-ID: <form@riverside.nhs.net>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nForm attached +2D0-\r\n"
        b"--BB\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        + filename_parameter
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + pdf
        + b"\r\n--BB--\r\n"
    )


def deliver(config: Config, *messages: bytes) -> None:
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    try:
        for data in messages:
            box.add(mailbox.MaildirMessage(data))
    finally:
        box.close()


def ledger(db: Database) -> list[tuple[str, str | None, str | None]]:
    with db.transaction() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.message_id))
        return [(r.status, r.subject, r.from_name) for r in rows]


def test_a_lone_surrogate_in_a_header_or_body_stops_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    deliver(
        config,
        message(1, b"First request"),
        message(2, b"=?utf-7?Q?Request_+2D0-?="),
        message(3, b"Third request", sender=b"=?utf-7?Q?Mo_+2D0-?="),
        message(4, b"Fourth request", body=b"Please add Jane +2D0-", charset=b"utf-7"),
        message(5, b"Fifth request", body=b"Please add Jane \\ud83d", charset=b"unicode-escape"),
        message(6, b"Sixth request", sender=b"=?utf-8?Q?Mo=00Manager?="),
        message(7, b"Seventh request", sender=b'"Mo\x00Manager"'),
    )
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.polls[0].error is None and report.polls[0].fetched == 7
    assert report.processing.failed == 0
    rows = ledger(db)
    assert [status for status, _, _ in rows] == ["processed"] * 7
    assert all("\x00" not in (name or "") for _, _, name in rows)
    assert rows[1][1] == "Request \ufffd"
    assert "\ufffd" in (rows[2][2] or "\ufffd")  # the display name, if kept, as text
    again = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert again.polls[0].fetched == 0  # nothing was left behind to fetch again


def test_a_form_named_in_utf7_is_read(db: Database, config: Config, env: WorkflowEnv) -> None:
    deliver(config, form_message(b"filename*=utf-7''form%2B2D0-.pdf"))
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.processing.failed == 0
    case = the_case(db, MANAGER[1])
    assert case.kind == "gpp_admin_form"
    assert [m.to_address for m in sent(db, "acknowledgement")] == [MANAGER[1]]


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        (b"Request +2D0-", "utf-7", "Request \ufffd"),
        (b"Request +2D3eAA-", "utf-7", "Request \U0001f600"),  # a whole pair is kept
    ],
)
def test_decoded_text_holds_no_lone_surrogate(data: bytes, charset: str, text: str) -> None:
    assert decode_bytes(data, charset) == (text, None)
    text.encode("utf-8")  # storable


def test_a_codec_of_bytes_to_bytes_is_no_charset() -> None:
    assert decode_bytes(b"Please add Jane", "rot13") == (
        "Please add Jane",
        "unknown charset 'rot13'",
    )
    assert decode_bytes(b"Please add Jane", "hex")[0] == "Please add Jane"


def test_storable_leaves_ordinary_text_alone() -> None:
    assert storable("Seán O’Brien 😀") == "Seán O’Brien 😀"
    assert storable("a\ud83db\udfffc") == "a\ufffdb\ufffdc"


def test_a_header_the_database_refuses_is_recorded_without_its_facts(
    db: Database, config: Config, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever else a header may hold that no database stores: the message is recorded
    without the facts read from its headers, and the rest of the batch with theirs."""
    real = poller.header_facts

    def unstorable(raw: bytes) -> HeaderFacts:
        facts = real(raw)
        if b"Second" in raw:  # as a lone surrogate would have been, before storable()
            return replace(facts, subject="Second \ud83d")
        return facts

    monkeypatch.setattr(poller, "header_facts", unstorable)
    deliver(config, message(1, b"First request"), message(2, b"Second request"))
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.polls[0].error is None and report.polls[0].fetched == 2
    assert report.processing.failed == 0
    assert sorted((subject or "") for _, subject, _ in ledger(db)) == ["", "First request"]
