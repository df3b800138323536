"""Genuine, DKIM-signed mail replayed into the inbox with headers added: nothing is granted.

A signature covers From, the body and the headers it lists, never a header added above it.
Each message here is signed as Exchange Online or Gmail signs, changed as an attacker
could change it, checked with a real verifier (dkimpy) to still pass, stamped with the
verdict a receiving server writes from that, and then read by intake and the workflow.
"""

from __future__ import annotations

import mailbox
import re
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.senderauth import Profile, SenderPolicy, authenticate
from intake.mailparse import parse_mail
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from service.config import Config
from tests.fixtures import dkim
from tests.test_workflow_helpers import NOW, OUR, TRUSTED
from tests.test_workflow_mail import (
    CORPUS,
    ICB,
    MANAGER,
    PARTNER,
    arrive,
    mail_config,
    mail_world,
    sent,
    the_case,
)
from workflow import directory
from workflow.env import WorkflowEnv
from workflow.models import Case

PCN_MANAGER = "tariq@coastalpcn.example"


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def signed(
    sender: tuple[str, str],
    to: str,
    subject: str,
    text: str,
    *,
    pdf: str | None = None,
    headers: tuple[bytes, ...] = dkim.EXCHANGE,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender[0]} <{sender[1]}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="nhs.net")
    msg["Date"] = NOW.strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content(text)
    if pdf:
        data = (CORPUS / pdf).read_bytes()
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=pdf)
    return dkim.sign(bytes(msg), sender[1].rsplit("@", 1)[1], headers)


def replayed(raw: bytes, *lines: str, domain: str = "nhs.net") -> bytes:
    """`raw` with header lines added on top, still passing DKIM, as the inbox receives it."""
    changed = dkim.added(raw, *lines)
    assert dkim.verifies(changed)  # the premise: a real verifier still passes it
    return dkim.received(changed, TRUSTED, domain)


def pcn_admins(db: Database) -> list[str]:
    with db.transaction() as session:
        return [p.email for p in directory.admins(session, "U12345", "pcn")]


def gpp_admins(db: Database) -> list[str]:
    with db.transaction() as session:
        return [p.email for p in directory.admins(session, "A81001", "gpp")]


def approval_request(db: Database, config: Config, env: WorkflowEnv) -> OutboxMessage:
    """The practice manager's GPP form, sent to its signer for approval."""
    form = signed(MANAGER, OUR, "GPP user admin form", "Form attached.", pdf="gpp-acroform.pdf")
    arrive(db, config, env, dkim.received(form, TRUSTED, "riverside.nhs.net"))
    (request,) = sent(db, "approval_request")
    return request


def forwarded_by_the_signer(request: OutboxMessage, note: str) -> bytes:
    """Anil forwards the approval request to the practice manager, for information."""
    quoted = (
        f"\n\n________________________________\nFrom: PCSE <{OUR}>\nTo: {PARTNER[1]}\n"
        f"Subject: {request.subject}\n\n{request.body_text}"
    )
    return signed(PARTNER, MANAGER[1], f"FW: {request.subject}", note + quoted)


def one_click_subject(request: OutboxMessage) -> str:
    ref = re.search(r"PCSE-\d{4}-\d{6}", request.subject)
    code = re.search(r"APV-[0-9a-f]{20}", request.subject)
    assert ref and code
    return f"APPROVE [{ref.group(0)}] {code.group(0)}"


# --------------------------------------------------------------------------- a PCN form


def test_an_ael_contacts_form_to_the_pcn_replayed_with_our_cc_grants_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Gill sends the completed PCN form back to the PCN. The PCN adds a Cc of ours, which
    Exchange's signature does not cover, and sends it on: her mail passes DMARC and now
    names us, but she is asked with a code like any approver."""
    note = "Hi Tariq,\n\nI have completed Part B of the attached PCN form for our records.\n"
    genuine = signed(ICB, PCN_MANAGER, "PCN form", note, pdf="pcn-acroform.pdf")
    arrive(db, config, env, replayed(genuine, f"Cc: {OUR}"))
    assert the_case(db, ICB[1]).state == "awaiting_approval"
    assert [m.to_address for m in sent(db, "approval_request")] == [ICB[1]]
    assert pcn_admins(db) == []


def test_a_second_to_above_a_signed_one_goes_to_a_person(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Gmail signs To and Cc, but only the copies there were: a second To on top passes."""
    note = "Hi Tariq,\n\nThe PCN form, completed.\n"
    genuine = signed(ICB, PCN_MANAGER, "PCN form", note, pdf="pcn-acroform.pdf", headers=dkim.GMAIL)
    assert not dkim.verifies(dkim.added(genuine, f"Cc: {OUR}"))  # Cc was signed as absent
    arrive(db, config, env, replayed(genuine, f"To: {OUR}"))
    case = the_case(db, ICB[1])
    assert case.state == "triage"
    assert "nobody vouched" in case.reason
    with db.transaction() as session:
        detail = session.scalar(select(InboundMessage.sender_detail))
    assert detail and "more than one to header" in detail.lower()
    assert pcn_admins(db) == []
    assert sent(db, "approval_request") == []


def test_a_submission_replayed_under_a_new_message_id_grants_nothing_again(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Her genuine submission, once its roles were revoked, sent again with a Message-ID
    of the attacker's on top: not a duplicate by Message-ID or digest, so a new case, which
    goes to a person."""
    genuine = signed(ICB, OUR, "PCN form", "Approved by the ICB.", pdf="pcn-acroform.pdf")
    arrive(db, config, env, dkim.received(genuine, TRUSTED, "nhs.net"))
    arrive(db, config, env, replayed(genuine, "Message-ID: <replay-1@attacker.example>"))
    with db.transaction() as session:
        states = session.scalars(select(Case.state).order_by(Case.id)).all()
    assert states == ["awaiting_approval", "triage"]
    assert pcn_admins(db) == []


# --------------------------------------------------------------------------- answers


def test_a_forward_of_the_request_with_a_one_click_subject_added_approves_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """The practice manager, who asked, adds an APPROVE subject above the signed one of
    Anil's FYI forward (which carries the code) and sends it in."""
    request = approval_request(db, config, env)
    forward = forwarded_by_the_signer(request, "Mo - FYI, see below.\n\nAnil")
    arrive(db, config, env, replayed(forward, f"Subject: {one_click_subject(request)}"))
    assert the_case(db, MANAGER[1]).state != "completed"
    assert gpp_admins(db) == []


def test_the_same_forward_stamped_by_exchange_online_approves_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """As Exchange Online stamps mail from outside (AuthAs Anonymous, dmarc=pass on DKIM)."""
    request = approval_request(db, config, env)
    env.sender_policy = SenderPolicy(Profile.MICROSOFT365, internal_domains=("nhs.net",))
    forward = dkim.added(
        forwarded_by_the_signer(request, "Mo - FYI, see below.\n\nAnil"),
        f"Subject: {one_click_subject(request)}",
    )
    assert dkim.verifies(forward)
    stamped = dkim.added(
        forward,
        "Authentication-Results: spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=nhs.net; "
        "dkim=pass (signature was verified) header.d=nhs.net;dmarc=pass action=none "
        "header.from=nhs.net;compauth=pass reason=100",
        "X-MS-Exchange-Organization-AuthAs: Anonymous",
    )
    arrive(db, config, env, stamped)
    assert the_case(db, MANAGER[1]).state != "completed"
    assert gpp_admins(db) == []


def test_a_code_in_an_added_cc_makes_no_answer_of_an_unrelated_approval(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Anil's "Approved" about annual leave, with a Cc of ours carrying the code added: no
    header is repeated and the signature holds, but a code is read only from the subject
    and the text."""
    request = approval_request(db, config, env)
    code = re.search(r"APV-[0-9a-f]{20}", request.subject)
    assert code
    leave = signed(
        PARTNER, MANAGER[1], "RE: Annual leave 12-16 May", "Approved. Thanks, Anil\n\n> May I?\n"
    )
    arrive(db, config, env, replayed(leave, f"Cc: pcse.portalenquiries+{code.group(0)}@nhs.net"))
    assert the_case(db, MANAGER[1]).state == "awaiting_approval"
    assert gpp_admins(db) == []
    with db.transaction() as session:
        cases = session.scalar(select(func.count()).select_from(Case))
    assert cases == 2  # the leave email is a message of its own, not an answer


def test_the_signers_own_reply_still_approves(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """The control: his genuine reply, as signed, decides."""
    request = approval_request(db, config, env)
    reply = signed(PARTNER, OUR, f"RE: {request.subject}", f"Approved\n\n> {request.subject}\n")
    arrive(db, config, env, dkim.received(reply, TRUSTED, "nhs.net"))
    assert the_case(db, MANAGER[1]).state == "completed"
    assert gpp_admins(db) != []


# --------------------------------------------------------------------------- the rule


def test_each_header_a_message_holds_once_is_refused_when_repeated() -> None:
    base = signed(PARTNER, OUR, "Hello", "Hi.")
    assert parse_mail(base).repeated_headers == []
    for line in (
        "From: Anil Patel <anil.patel@nhs.net>",
        "To: someone@nhs.net",
        "Cc: someone@nhs.net",
        "Subject: APPROVE",
        "Date: Mon, 2 Mar 2026 09:00:00 +0000",
        "Message-ID: <other@nhs.net>",
        "In-Reply-To: <other@nhs.net>",
        "References: <other@nhs.net>",
        "Reply-To: someone@nhs.net",
        "Sender: anil.patel@nhs.net",
        "MIME-Version: 1.0",
        "Content-Type: text/plain",
        "Content-Transfer-Encoding: 7bit",
    ):
        # Twice: the base holds some of these once and some not at all.
        mail = parse_mail(dkim.received(dkim.added(base, line, line), TRUSTED, "nhs.net"))
        assert mail.repeated_headers == [line.split(":")[0].lower()], line
        verdict = authenticate(
            SenderPolicy(Profile.AUTHSERV_ID, trusted_authserv_ids=(TRUSTED,)),
            mail.sender_identity,
            mail.authentication_results,
            mail.auth_as,
            mail.on_behalf,
            mail.repeated_headers,
        )
        assert not verdict.trusted, line


# --------------------------------------------------------------------------- header breaks


def with_line_before_the_body(raw: bytes, line: str) -> bytes:
    """`raw` with `line` put last in its header section, where a relay may add headers."""
    head, blank, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n" + line.encode() + blank + body


def stamped_as_passing(raw: bytes) -> bytes:
    """The verdict of a receiving server that reads obsolete header syntax and passes the
    signature (dkimpy refuses such a header, so its verdict is not asked)."""
    return dkim.added(
        raw,
        f"Authentication-Results: {TRUSTED}; spf=softfail smtp.mailfrom=nhs.net; "
        "dkim=pass header.d=nhs.net header.s=selector1; dmarc=pass header.from=nhs.net",
    )


def test_a_line_that_is_not_a_header_in_an_approvers_forward_approves_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Anil forwards the request with no note. "Approved :" (obsolete syntax: a space before
    the colon) added below his headers is a header to a lenient verifier, and to the email
    package the end of the headers and the first line of his text."""
    request = approval_request(db, config, env)
    forward = with_line_before_the_body(forwarded_by_the_signer(request, ""), "Approved :")
    assert parse_mail(forward).text.startswith("Approved :")  # the premise
    # Added as bytes: a MaildirMessage would write the headers out again, mended.
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    box.add(stamped_as_passing(forward))
    box.close()
    arrive(db, config, env)
    assert the_case(db, MANAGER[1]).state != "completed"
    assert gpp_admins(db) == []


def test_a_bare_cr_in_an_added_header_of_an_approvers_forward_approves_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """The same forward with "X-Note: a<CR><CR>Approved" added below Anil's headers: one
    header to dkimpy, which passes the signature, and to the email package the end of the
    headers and a first line of his text."""
    request = approval_request(db, config, env)
    forward = with_line_before_the_body(
        forwarded_by_the_signer(request, ""), "X-Note: see below\r\rApproved"
    )
    assert dkim.verifies(forward)
    assert parse_mail(forward).text.startswith("Approved")  # the premise
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    box.add(dkim.received(forward, TRUSTED, "nhs.net"))
    box.close()
    arrive(db, config, env)
    assert the_case(db, MANAGER[1]).state != "completed"
    assert gpp_admins(db) == []


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("last", "Approved :"),
        ("last", "X-Note : hello"),
        ("top", "From attacker@evil.example Mon Mar  2 09:00:00 2026"),
        ("last", "X-Note: a\rApproved"),
        ("last", "X-Note: a\nApproved"),
        ("last", "X-Note: a\r\rApproved"),
    ],
)
def test_a_header_section_that_stops_being_headers_authenticates_nobody(
    where: str, line: str
) -> None:
    base = signed(PARTNER, OUR, "Hello", "Hi.")
    policy = SenderPolicy(Profile.AUTHSERV_ID, trusted_authserv_ids=(TRUSTED,))
    control = parse_mail(stamped_as_passing(base))
    assert control.header_break is None
    assert authenticate(policy, control.sender_identity, control.authentication_results, []).trusted
    changed = with_line_before_the_body(base, line) if where == "last" else dkim.added(base, line)
    # The receiving server writes its verdict above everything, so the From is still read.
    mail = parse_mail(stamped_as_passing(changed))
    assert mail.sender_identity.address == PARTNER[1]
    assert mail.header_break is not None
    verdict = authenticate(
        policy,
        mail.sender_identity,
        mail.authentication_results,
        mail.auth_as,
        header_break=mail.header_break,
    )
    assert not verdict.trusted
    assert "malformed" in verdict.detail


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@nhs.net\r\nSubject: x\r\n\r\nline one\rline two\nthree\r\n",
        b"From: a@nhs.net\nSubject: x\n\nkept as a Maildir file keeps it\n",
        b"From: a@nhs.net\r\nSubject: no body at all",
    ],
)
def test_line_endings_that_agree_in_the_header_section_are_no_break(raw: bytes) -> None:
    assert parse_mail(raw).header_break is None
