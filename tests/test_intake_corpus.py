"""Every sample in tests/corpus/mail, read and classified; the expectation sits beside each file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.db import Database
from intake.classify import Facts, classify
from intake.mailparse import parse_mail
from intake.models import InboundMessage
from intake.rawstore import sha256_of
from notifications.models import OutboxMessage
from workflow.cases import create_case
from workflow.intake_link import DatabaseKnowledge
from workflow.models import ApprovalRequest, Case

CORPUS = Path(__file__).parent / "corpus" / "mail"
SAMPLES = sorted(CORPUS.glob("*.eml"))
OURS = frozenset({"pcse.portalenquiries@nhs.net"})
TOKEN = "0123456789abcdef0123"
WHEN = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def known_world(session) -> Case:
    """Case PCSE-2026-000001, an email we sent on it, its approval request, the opening email."""
    opening = InboundMessage(
        mailbox="enquiries",
        uidvalidity=1,
        uid=1,
        message_id="<opening-request@a81001.nhs.uk>",
        sha256="0" * 64,
        size=100,
        status="processed",
    )
    session.add(opening)
    session.flush()
    case = create_case(
        session,
        kind="pl_admin",
        requester="pm@a81001.nhs.uk",
        now=WHEN,
        source_message_id=opening.id,
    )
    opening.case_id = case.id
    session.add(
        OutboxMessage(
            case_id=case.id,
            purpose="acknowledgement",
            message_id="<out-1@pcse.example>",
            to_address="pm@a81001.nhs.uk",
            subject=f"[{case.ref}] We have received your request",
            body_text="We have received your request.",
        )
    )
    session.add(
        ApprovalRequest(
            case_id=case.id,
            token=TOKEN,
            approver_email="alex.partner@nhs.net",
            approver_name="Dr Alex Partner",
            approver_source="signer",
            expires_at=WHEN + timedelta(days=10),
        )
    )
    session.flush()
    return case


def check(sample: Path, session, case: Case, uid: int) -> None:
    expected = json.loads(sample.with_suffix(".expected.json").read_text())
    raw = sample.read_bytes()
    row = InboundMessage(
        mailbox="enquiries", uidvalidity=1, uid=uid, sha256=sha256_of(raw), size=len(raw)
    )
    session.add(row)
    session.flush()

    mail = parse_mail(raw)
    found = classify(mail, Facts.of(row), DatabaseKnowledge(session), OURS)

    assert found.kind == expected["kind"], found.reason
    assert found.reason
    if "case_ref" in expected:
        assert found.case_id == case.id
    else:
        assert found.case_id is None
    assert found.token == expected.get("token")
    if "sender" in expected:
        assert mail.sender == expected["sender"]
    # Every sample says whether its From reads strictly as one clean mailbox.
    assert mail.sender_identity.parsed_cleanly == expected.get("sender_verified", True) or (
        expected["kind"] == "unrelated" and not mail.from_addresses
    ), sample.name
    if "sender_problem" in expected:
        assert expected["sender_problem"] in (mail.sender_identity.problem or "")
    if "display_name" in expected:
        assert mail.from_addresses[0][0] == expected["display_name"]
    if "message_id" in expected:
        assert mail.message_id == expected["message_id"]
    if "subject" in expected:
        assert mail.subject == expected["subject"]
    for words in expected.get("text_contains", []):
        assert words in mail.text
    for words in expected.get("text_excludes", []):
        assert words not in mail.text
    if "attachments" in expected:
        assert [a.filename for a in mail.attachments] == expected["attachments"]
        assert all(a.data for a in mail.attachments)
    if "problem_contains" in expected:
        assert any(expected["problem_contains"] in p for p in mail.problems)
    if "reason_contains" in expected:
        assert expected["reason_contains"] in found.reason


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample(sample: Path, sqlite_database: Database) -> None:
    with sqlite_database.transaction() as session:
        case = known_world(session)
        assert case.ref == "PCSE-2026-000001"
        check(sample, session, case, uid=2)


def test_whole_corpus_on_both_databases(database: Database) -> None:
    """The look-ups behind classification (duplicates, refs, threading, tokens) on each engine."""
    with database.transaction() as session:
        case = known_world(session)
        for uid, sample in enumerate(SAMPLES, start=2):
            check(sample, session, case, uid)
        # Each sample again, now seen before: every one is a duplicate, by digest or Message-ID.
        for uid, sample in enumerate(SAMPLES, start=1000):
            raw = sample.read_bytes()
            row = InboundMessage(
                mailbox="enquiries", uidvalidity=1, uid=uid, sha256=sha256_of(raw), size=len(raw)
            )
            session.add(row)
            session.flush()
            found = classify(parse_mail(raw), Facts.of(row), DatabaseKnowledge(session), OURS)
            expected = json.loads(sample.with_suffix(".expected.json").read_text())["kind"]
            want = "unrelated" if expected == "unrelated" else "duplicate"
            assert found.kind == want, sample.name


def test_the_corpus_covers_every_kind_the_classifier_gives() -> None:
    kinds = {json.loads(p.with_suffix(".expected.json").read_text())["kind"] for p in SAMPLES}
    assert kinds == {
        "new_request",
        "case_reply",
        "approval_answer",
        "automatic",
        "bounce",
        "unrelated",
    }
    assert len(SAMPLES) >= 25
