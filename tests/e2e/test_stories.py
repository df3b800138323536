"""Every story of `pcse demo`, end to end through `pcse run`.

The sample mail is appended to Dovecot as a mail server would deliver it; `pcse run` picks
it up over IMAPS, processes it into PostgreSQL and sends its replies through an SMTP server
that wants STARTTLS and a login. The approvers' answers are read from what that server
received and appended in turn. Then each test checks one story: the case, the directory,
and every email sent about it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from demo.mail import approver_reply, stories
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from notifications.sink import Received
from tests.e2e.conftest import INBOX_ADDRESS, Stack
from tests.e2e.process import wait_for
from workflow.directory import org_view
from workflow.models import Case, CaseEvent

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e"),
]

STORIES = {story.key: story for story in stories()}
TOKEN = re.compile(r"\bAPV-([0-9a-f]{20})\b")
REF = re.compile(r"\[(PCSE-\d{4}-\d{6})\]")
SETTLED = ("processed", "ignored", "duplicate", "failed")


@dataclass
class Outcome:
    stack: Stack
    requests: dict[str, bytes]  # story key -> the message delivered
    replies: dict[str, bytes]  # story key -> the approver's answer delivered

    def case(self, key: str) -> Case:
        with self.stack.db.transaction() as session:
            return session.scalars(
                sa.select(Case).where(Case.requester == STORIES[key].sender)
            ).one()

    def history(self, key: str) -> list[CaseEvent]:
        case = self.case(key)
        with self.stack.db.transaction() as session:
            return list(
                session.scalars(
                    sa.select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
                )
            )

    def emails(self, key: str) -> list[EmailMessage]:
        """What the SMTP server received about the story's case."""
        ref = self.case(key).ref
        return [m for m in messages(self.stack) if f"[{ref}]" in str(m["Subject"])]

    def sent(self, key: str) -> list[tuple[str, str]]:
        """(purpose, recipient) of each outbox row of the story's case, all sent."""
        case = self.case(key)
        with self.stack.db.transaction() as session:
            rows = session.execute(
                sa.select(OutboxMessage.purpose, OutboxMessage.to_address, OutboxMessage.status)
                .where(OutboxMessage.case_id == case.id)
                .order_by(OutboxMessage.id)
            ).all()
        assert all(status == "sent" for _, _, status in rows), rows
        return sorted((purpose, to) for purpose, to, _ in rows)

    def roles(self, org: str) -> dict[str, list[str]]:
        """Active people of the organisation and their roles, from `org_view`."""
        with self.stack.db.transaction() as session:
            view = org_view(session, org)
        return {u["email"]: sorted(u["roles"]) for u in view["users"] if u["active"] and u["roles"]}


def messages(stack: Stack) -> list[EmailMessage]:
    return [r.message() for r in stack.sink.messages]


def settled(stack: Stack, count: int) -> bool:
    """`count` messages handled, the outbox empty, and everything sent received."""
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
        sent = session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == "sent")
        )
    return done >= count and waiting == 0 and len(stack.sink.messages) >= sent


def approval_requests(stack: Stack) -> list[Received]:
    return [
        r
        for r in stack.sink.messages
        if TOKEN.search(str(r.message()["Subject"]))
        and not str(r.message()["Subject"]).lower().startswith("re:")
    ]


@pytest.fixture(scope="module")
def outcome(stack: Stack) -> Outcome:
    requests = {s.key: s.build(s, INBOX_ADDRESS).as_bytes() for s in STORIES.values()}
    stack.deliver(list(requests.values()))
    wait_for(
        lambda: settled(stack, len(requests)),
        timeout=60,
        service=stack.service,
        what="the sample mail to be handled and answered",
    )
    by_sender = {s.sender: s for s in STORIES.values()}
    replies: dict[str, bytes] = {}
    for received in approval_requests(stack):
        ref = REF.search(str(received.message()["Subject"])).group(1)
        with stack.db.transaction() as session:
            requester = session.scalar(sa.select(Case.requester).where(Case.ref == ref))
        story = by_sender[requester]
        assert story.answer is not None, f"{story.key} was not expected to need an approver"
        replies[story.key] = approver_reply(received.data, story.answer)
    stack.deliver(list(replies.values()))
    wait_for(
        lambda: settled(stack, len(requests) + len(replies)),
        timeout=60,
        service=stack.service,
        what="the approvers' answers to be handled",
    )
    return Outcome(stack, requests, replies)


# --------------------------------------------------------------------------- the stories


def test_filled_gpp_form_is_approved_by_the_recorded_partner(outcome: Outcome) -> None:
    case = outcome.case("gpp_form")
    assert (case.kind, case.organisation_code, case.state) == (
        "gpp_admin_form",
        "A81001",
        "completed",
    )
    assert outcome.sent("gpp_form") == [
        ("acknowledgement", "sarah.khan@nhs.net"),
        ("approval_request", "priya.shah@nhs.net"),
        ("outcome_completed", "sarah.khan@nhs.net"),
        ("welcome_admin", "emma.clarke@nhs.net"),
    ]
    assert outcome.roles("A81001")["emma.clarke@nhs.net"] == ["GPP Practice User Administrator"]


def test_user_admin_form_sets_up_admins_and_main_contact(outcome: Outcome) -> None:
    case = outcome.case("user_admin_form")
    assert (case.kind, case.organisation_code, case.state) == (
        "user_admin_form",
        "A81005",
        "completed",
    )
    sent = outcome.sent("user_admin_form")
    assert ("approval_request", "fiona.walsh@nhs.net") in sent
    assert ("outcome_completed", "mike.dunn@nhs.net") in sent
    assert ("welcome_main_contact", "aisha.malik@nhs.net") in sent
    # One welcome naming both of Chloe's new roles.
    assert [to for purpose, to in sent if purpose == "welcome_admin"] == ["chloe.price@nhs.net"]
    roles = outcome.roles("A81005")
    assert roles["chloe.price@nhs.net"] == [
        "GPP Practice User Administrator",
        "PL Organisation Administrator",
    ]
    assert roles["aisha.malik@nhs.net"] == ["Main Contact"]


def test_outlook_style_approval_is_read_above_the_quoted_request(outcome: Outcome) -> None:
    """The Outlook reply quotes the request (which explains APPROVE and REJECT) in full."""
    reply = outcome.replies["user_admin_form"].decode()
    assert "________________________________" in reply and "From: " in reply
    answers = [
        e
        for e in outcome.history("user_admin_form")
        if e.actor == "fiona.walsh@nhs.net" or "fiona.walsh@nhs.net" in (e.detail or "")
    ]
    assert answers, "the approver's answer is in the case history"


def test_flattened_form_rejected_with_the_approvers_reason(outcome: Outcome) -> None:
    case = outcome.case("flattened")
    assert (case.kind, case.organisation_code, case.state) == (
        "gpp_admin_form",
        "A81003",
        "rejected",
    )
    assert "left the practice" in (case.reason or "")
    assert outcome.sent("flattened") == [
        ("acknowledgement", "paul.wright@nhs.net"),
        ("approval_request", "janet.okoro@nhs.net"),
        ("outcome_rejected", "paul.wright@nhs.net"),
    ]
    rejection = next(
        m
        for m in outcome.emails("flattened")
        if m["To"].addresses[0].addr_spec == "paul.wright@nhs.net"
        and "left the practice" in m.get_body(("plain",)).get_content()
    )
    assert rejection is not None
    assert "david.lowe@nhs.net" not in outcome.roles("A81003")


def test_pcn_form_from_an_ael_contact_is_granted_on_her_answer_to_its_code(
    outcome: Outcome,
) -> None:
    """The stack's receiving server vouches with DMARC (`authserv-id`), which a replay of her
    mail to someone else passes too: she is asked with a code, and her answer grants."""
    case = outcome.case("pcn_form")
    assert (case.kind, case.organisation_code, case.state) == (
        "pcn_admin_form",
        "U12345",
        "completed",
    )
    sent = outcome.sent("pcn_form")
    assert ("approval_request", "gill.hart@nhs.net") in sent
    assert ("outcome_completed", "gill.hart@nhs.net") in sent
    roles = outcome.roles("U12345")
    assert roles["ruth.bennett@nhs.net"] == ["PCN User Admin"]
    assert roles["imran.ali@nhs.net"] == ["PCN User Admin"]


def test_pl_request_by_email_is_approved_by_a_signer(outcome: Outcome) -> None:
    case = outcome.case("pl_email")
    assert (case.kind, case.organisation_code, case.state) == ("pl_admin", "A81001", "completed")
    sent = outcome.sent("pl_email")
    assert ("approval_request", "priya.shah@nhs.net") in sent
    assert ("outcome_completed", "mark.dawson@nhs.net") in sent
    assert outcome.roles("A81001")["hannah.lee@nhs.net"] == ["PL Organisation Administrator"]


def test_oph_request_where_an_admin_exists_is_answered_with_directions(outcome: Outcome) -> None:
    case = outcome.case("oph_email")
    assert (case.kind, case.organisation_code, case.state) == ("oph_admin", "TP7011", "answered")
    assert outcome.sent("oph_email") == [
        ("redirect_existing_admins", "daniel.brooks@clearview-opticians.co.uk")
    ]
    assert "sophie.turner@clearview-opticians.co.uk" not in outcome.roles("TP7011")


def test_main_contact_change_replaces_the_old_one_and_tells_him(outcome: Outcome) -> None:
    case = outcome.case("main_contact")
    assert (case.kind, case.organisation_code, case.state) == (
        "main_contact",
        "A81002",
        "completed",
    )
    sent = outcome.sent("main_contact")
    assert ("approval_request", "alan.reid@nhs.net") in sent
    assert ("main_contact_replaced", "tom.baker@nhs.net") in sent
    assert ("welcome_main_contact", "lisa.moore@nhs.net") in sent
    roles = outcome.roles("A81002")
    assert roles["lisa.moore@nhs.net"] == ["Main Contact"]
    assert "tom.baker@nhs.net" not in roles


def test_fifth_gpp_admin_is_refused(outcome: Outcome) -> None:
    case = outcome.case("fifth_admin")
    assert (case.kind, case.organisation_code, case.state) == (
        "gpp_admin_form",
        "A81004",
        "rejected",
    )
    sent = outcome.sent("fifth_admin")
    assert ("admin_limit_reached", "karen.hughes@nhs.net") in sent
    roles = outcome.roles("A81004")
    assert "zoe.adams@nhs.net" not in roles
    assert sum("GPP Practice User Administrator" in r for r in roles.values()) == 4
    # The current admins are not disclosed to the requester.
    for email in outcome.emails("fifth_admin"):
        assert "rachel.green" not in email.get_body(("plain",)).get_content()


def test_out_of_office_is_recorded_and_never_answered(outcome: Outcome) -> None:
    with outcome.stack.db.transaction() as session:
        row = session.scalars(
            sa.select(InboundMessage).where(InboundMessage.from_address == "peter.nolan@nhs.net")
        ).one()
        assert (row.classification, row.status, row.case_id) == ("automatic", "ignored", None)
    assert not [m for m in messages(outcome.stack) if "peter.nolan@nhs.net" in str(m["To"])]


def test_performer_question_gets_directions(outcome: Outcome) -> None:
    case = outcome.case("performer")
    assert (case.kind, case.state) == ("performer_registration", "answered")
    assert ("redirect_performer_registration", "kwame.mensah@nhs.net") in outcome.sent("performer")


def test_unreadable_pdf_asks_the_sender_again(outcome: Outcome) -> None:
    case = outcome.case("unreadable")
    assert case.state in ("needs_info", "triage")
    sent = outcome.sent("unreadable")
    assert [to for _, to in sent] and {to for _, to in sent} == {"sue.collins@nhs.net"}
    assert "attachment_unreadable" in {purpose for purpose, _ in sent}


# --------------------------------------------------------------------------- every email


def test_every_email_is_threaded_and_carries_its_reference(outcome: Outcome) -> None:
    sent = messages(outcome.stack)
    with outcome.stack.db.transaction() as session:
        rows = session.scalars(sa.select(OutboxMessage)).all()
        refs = dict(session.execute(sa.select(Case.id, Case.ref)).all())
        assert len(sent) == len(rows) and {r.status for r in rows} == {"sent"}
    ids = [m["Message-ID"] for m in sent]
    assert len(set(ids)) == len(ids), "each email was sent once"
    by_id = {m["Message-ID"]: m for m in sent}
    request_ids = {key: _message_id(data) for key, data in outcome.requests.items()}
    for row in rows:
        email = by_id[row.message_id]
        assert f"[{refs[row.case_id]}]" in str(email["Subject"])
        assert email["To"].addresses[0].addr_spec == row.to_address
        assert email["From"].addresses[0].addr_spec == INBOX_ADDRESS
        assert email["Auto-Submitted"] in ("auto-replied", "auto-generated")
        assert INBOX_ADDRESS not in str(email["To"])
        if row.in_reply_to:
            # A long Message-ID is folded onto a line of its own (legal; strip the space).
            assert str(email["In-Reply-To"]).strip() == row.in_reply_to
            assert row.in_reply_to in str(email["References"])
    # Replies to the requester thread onto the request they sent.
    for key in ("gpp_form", "flattened", "performer"):
        ack = next(
            m for m in outcome.emails(key) if m["To"].addresses[0].addr_spec == STORIES[key].sender
        )
        assert str(ack["In-Reply-To"]).strip() == request_ids[key]


def test_status_reports_a_healthy_service(outcome: Outcome) -> None:
    status = json.loads(outcome.stack.pcse("status", "--json"))
    (box,) = status["mailboxes"]
    assert box["name"] == "enquiries" and box["last_poll_at"] and box["last_error"] is None
    assert (status["messages_pending"], status["messages_failed"]) == (0, 0)
    assert (status["outbox_pending"], status["outbox_held"], status["outbox_failed"]) == (0, 0, 0)
    assert status["cases"]["completed"] == 5
    assert status["cases"]["rejected"] == 2
    assert outcome.stack.service.alive()


def test_log_has_a_line_per_message_and_no_bodies(outcome: Outcome) -> None:
    log = outcome.stack.service.log()
    with outcome.stack.db.transaction() as session:
        inbound = session.scalars(sa.select(InboundMessage.id)).all()
    handled = re.findall(r"inbound (\d+) \[enquiries uid \d+\] \w+ -> \w+", log)
    assert sorted(map(int, handled)) == sorted(inbound), "one line for each message"
    assert "Many thanks for your help" not in log
    assert "This message may contain confidential information" not in log
    assert outcome.stack.account.password not in log


def test_sigterm_stops_the_service_cleanly(outcome: Outcome) -> None:
    assert outcome.stack.service.stop() == 0
    with outcome.stack.db.transaction() as session:
        assert not session.scalars(
            sa.select(InboundMessage).where(InboundMessage.status == "pending")
        ).all()


def _message_id(data: bytes) -> str:
    from email import message_from_bytes, policy

    return str(message_from_bytes(data, policy=policy.default)["Message-ID"])
