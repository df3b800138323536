"""Approvals under attack, end to end: real Dovecot, `pcse run`, PostgreSQL and the SMTP sink.

A request needs an approver; a forged answer (the approver's address hidden in an encoded
display name, the real sender someone else) is delivered with a passing verdict for its
own domain, as any NHSmail user's mail would be; then the real approver answers with the
one-click subject from the request's Approve link. Only the second may grant anything.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from demo.mail import stories
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from tests.e2e.conftest import AUTHSERV_ID, INBOX_ADDRESS, Stack
from tests.e2e.process import wait_for
from workflow.directory import org_view
from workflow.models import Case

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-attacks"),
]

SETTLED = ("processed", "ignored", "duplicate", "failed")
APPROVE_LINK = re.compile(r"Approve: (mailto:\S+)")


def settled(stack: Stack, count: int) -> bool:
    with stack.db.transaction() as session:
        done = session.scalar(
            sa.select(sa.func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.status.in_(SETTLED))
        )
        waiting = session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "sending")))
        )
    return done >= count and waiting == 0


def deliver_raw(stack: Stack, raw: bytes, dmarc_domain: str) -> None:
    """File a message as the receiving server would, with its verdict for `dmarc_domain`
    (the domain of the real sending mailbox, whatever the From header pretends)."""
    header = (
        f"Authentication-Results: {AUTHSERV_ID}; spf=pass "
        f"smtp.mailfrom={dmarc_domain}; dkim=pass header.d={dmarc_domain}; "
        f"dmarc=pass header.from={dmarc_domain}\r\n"
    ).encode()
    stack.account.append([header + raw])


def answer_message(from_header: str, subject: str, text: str) -> bytes:
    lines = [
        f"From: {from_header}",
        f"To: {INBOX_ADDRESS}",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='nhs.net')}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()


def pl_admins(stack: Stack, org: str) -> list[str]:
    with stack.db.transaction() as session:
        view = org_view(session, org)
    return sorted(
        u["email"]
        for u in view["users"]
        if u["active"] and "PL Organisation Administrator" in u["roles"]
    )


def test_a_forged_answer_grants_nothing_and_the_one_click_answer_does(stack: Stack) -> None:
    story = next(s for s in stories() if s.key == "pl_email")
    stack.deliver([story.build(story, INBOX_ADDRESS).as_bytes()])
    wait_for(
        lambda: settled(stack, 1),
        timeout=60,
        service=stack.service,
        what="the PL request to be handled",
    )
    with stack.db.transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.requester == story.sender)).one()
        ref, org = case.ref, case.organisation_code
        request = session.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.case_id == case.id, OutboxMessage.purpose == "approval_request"
            )
        ).one()
        approver = request.to_address
    wait_for(
        lambda: any(
            request.message_id in str(r.message()["Message-ID"]) for r in stack.sink.messages
        ),
        timeout=30,
        service=stack.service,
        what="the approval request to reach the SMTP server",
    )
    link = APPROVE_LINK.search(request.body_text).group(1)
    subject = unquote(link.split("subject=", 1)[1].split("&", 1)[0])
    token = re.search(r"APV-[0-9a-f]{20}", subject).group(0)
    before = pl_admins(stack, org)

    # The approver's address in an encoded display name, over Mallory's own mailbox.
    local = approver.split("@")[0]
    forged = f"=?utf-8?q?{local}=40nhs.net=0A?= <mallory@nhs.net>"
    deliver_raw(
        stack, answer_message(forged, f"RE: [{ref}] Approval needed {token}", "APPROVE"), "nhs.net"
    )
    wait_for(
        lambda: settled(stack, 2),
        timeout=60,
        service=stack.service,
        what="the forged answer to be handled",
    )
    with stack.db.transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.ref == ref)).one()
        forged_row = session.scalars(
            sa.select(InboundMessage).order_by(InboundMessage.id.desc())
        ).first()
        assert case.state == "triage"
        assert approver not in (case.reason or "")
        assert forged_row.sender_status == "unverified"
        assert forged_row.from_address != approver
    assert pl_admins(stack, org) == before

    # The case waits for a person now: the code it was sent with no longer decides it.
    # A caseworker who has spoken to the approver asks again, with a fresh code.
    stack.pcse("case", "ask-approver", ref, "--by", "casey@pcse.test", "--approver", approver)
    with stack.db.transaction() as session:
        again = session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.case_id == case.id, OutboxMessage.purpose == "approval_request")
            .order_by(OutboxMessage.id.desc())
        ).first()
    assert again.id != request.id
    stale = subject
    link = APPROVE_LINK.search(again.body_text).group(1)
    subject = unquote(link.split("subject=", 1)[1].split("&", 1)[0])
    assert subject != stale

    # The real approver taps Approve: a new email with the pre-filled subject, no body.
    deliver_raw(stack, answer_message(approver, subject, ""), approver.split("@")[1])
    wait_for(
        lambda: settled(stack, 3),
        timeout=60,
        service=stack.service,
        what="the one-click answer to be handled",
    )
    with stack.db.transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.ref == ref)).one()
        assert case.state == "completed", case.reason
        row = session.scalars(sa.select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert row.sender_status == "authenticated"
        assert AUTHSERV_ID in (row.sender_detail or "")
    assert len(pl_admins(stack, org)) == len(before) + 1

    # `pcse case show --json` carries each inbound message's address, display name and
    # verdict apart.
    document = json.loads(stack.pcse("case", "show", ref, "--json"))
    inbound = {m["sender_status"]: m for m in document["messages"] if m["direction"] == "in"}
    assert set(inbound) == {"authenticated", "unverified"}
    assert inbound["authenticated"]["from"] == approver
    assert inbound["unverified"]["from"] != approver
    assert all("from_name" in m for m in inbound.values())
