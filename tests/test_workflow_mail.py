"""Real email bytes through the real intake (Maildir source, ledger, parser, classifier) into
the workflow: PDF forms from the corpus, approvers' replies built from what the outbox holds."""

from __future__ import annotations

import mailbox
import threading
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select

import forms
from core.db import Database
from core.inbound import Classification, MessageKind
from forms import pdf_reader
from intake.mailparse import parse_mail
from intake.models import InboundMessage
from intake.pipeline import run_round
from notifications.models import OutboxMessage
from service.config import Config, from_mapping
from tests.test_workflow_helpers import NOW, OUR, TRUSTED
from workflow import directory
from workflow.env import WorkflowEnv
from workflow.handler import WorkflowHandler, handle_message
from workflow.intake_link import WorkflowLink
from workflow.models import AelContact, Case, Organisation, Signer

CORPUS = Path(__file__).parent / "corpus" / "forms"
MANAGER = ("Mo Manager", "manager@riverside.nhs.net")
PARTNER = ("Anil Patel", "anil.patel@nhs.net")
GUARDIAN = ("Helen Ward", "helen.ward@nhs.net")
ICB = ("Gill Hart", "gill.hart@nhs.net")


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


def mail_world(database: Database) -> Database:
    """The organisations and approvers the corpus forms name."""
    with database.transaction() as session:
        session.add_all(
            [
                Organisation(
                    code="A81001", name="Riverside Surgery", type="gp_practice", icb_code="QHM"
                ),
                Organisation(
                    code="B82005", name="Beacon Family Practice", type="gp_practice", icb_code="QHM"
                ),
                Organisation(
                    code="U12345", name="Coastal Primary Care Network", type="pcn", icb_code="QHM"
                ),
            ]
        )
        session.flush()
        riverside = directory.get_org(session, "A81001")
        beacon = directory.get_org(session, "B82005")
        session.add_all(
            [
                Signer(
                    organisation_id=riverside.id,
                    name=PARTNER[0],
                    email=PARTNER[1],
                    capacity="gp_partner",
                ),
                Signer(
                    organisation_id=beacon.id,
                    name=GUARDIAN[0],
                    email=GUARDIAN[1],
                    capacity="caldicott_guardian",
                ),
                AelContact(
                    icb_code="QHM", name=ICB[0], email=ICB[1], ael_role="GP Payments – General"
                ),
            ]
        )
        directory.set_main_contact(
            session,
            org_code="B82005",
            email="old.contact@nhs.net",
            name="Olive Old",
            actor="test",
            reason="setup",
        )
    return database


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def mail_config(db: Database, tmp_path: Path) -> Config:
    """A Maildir inbox, and the test receiving server trusted for its verdicts."""
    return from_mapping(
        {
            "database": {"url": db.url},
            "mailboxes": [
                {"name": "enquiries", "address": OUR, "maildir": str(tmp_path / "maildir")}
            ],
            "storage": {"raw_dir": str(tmp_path / "raw")},
            "security": {"sender_authentication": "authserv-id", "trusted_authserv_ids": [TRUSTED]},
        }
    )


def email(
    sender: tuple[str, str],
    subject: str,
    text: str,
    *,
    pdf: str | None = None,
    html: str | None = None,
    dmarc: str = "pass",
    extra_from: str | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage()
    domain = sender[1].rsplit("@", 1)[1]
    msg["Authentication-Results"] = (
        f"{TRUSTED}; spf=pass smtp.mailfrom={domain}; dmarc={dmarc} header.from={domain}"
    )
    msg["From"] = f"{sender[0]} <{sender[1]}>" + (f", {extra_from}" if extra_from else "")
    msg["To"] = OUR
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Date"] = NOW.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if pdf:
        msg.add_attachment(
            (CORPUS / pdf).read_bytes(), maintype="application", subtype="pdf", filename=pdf
        )
    return bytes(msg)


def arrive(db: Database, config: Config, env: WorkflowEnv, *messages: bytes) -> None:
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    try:
        for data in messages:
            box.add(mailbox.MaildirMessage(data))
    finally:
        box.close()
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.processing.failed == 0, failures(db)


def failures(db: Database) -> list[str | None]:
    with db.transaction() as session:
        return list(
            session.scalars(select(InboundMessage.error).where(InboundMessage.status == "failed"))
        )


def the_case(db: Database, requester: str) -> Case:
    with db.transaction() as session:
        case = session.scalars(
            select(Case).where(Case.requester == requester).order_by(Case.id.desc())
        ).first()
        assert case is not None
        _ = case.events
        return case


def sent(db: Database, purpose: str, to: str | None = None) -> list[OutboxMessage]:
    with db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.purpose == purpose)
        if to:
            query = query.where(OutboxMessage.to_address == to)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def reply_to(request: OutboxMessage, sender: tuple[str, str], answer: str, **kwargs) -> bytes:
    """The approver's reply, Outlook style, quoting the request below the answer."""
    quoted = (
        f"\n\n________________________________\nFrom: PCSE <{OUR}>\n"
        f"Sent: 02 March 2026 09:00\nTo: {sender[1]}\nSubject: {request.subject}\n\n"
        + request.body_text
    )
    return email(
        sender, f"RE: {request.subject}", answer + quoted, in_reply_to=request.message_id, **kwargs
    )


def test_gpp_form_by_email_to_roles_applied(db: Database, config: Config, env: WorkflowEnv) -> None:
    arrive(
        db,
        config,
        env,
        email(MANAGER, "GPP user admin form", "Form attached.", pdf="gpp-acroform.pdf"),
    )
    case = the_case(db, MANAGER[1])
    assert (case.kind, case.state) == ("gpp_admin_form", "awaiting_approval")
    (request,) = sent(db, "approval_request")
    assert request.to_address == PARTNER[1]
    assert [m.to_address for m in sent(db, "acknowledgement")] == [MANAGER[1]]

    arrive(db, config, env, reply_to(request, PARTNER, "Approved. Thanks, Anil"))
    case = the_case(db, MANAGER[1])
    assert case.state == "completed", case.reason
    with db.transaction() as session:
        assert [p.email for p in directory.admins(session, "A81001", "gpp")] == [
            "jane.smith@nhs.net"
        ]
    assert [m.to_address for m in sent(db, "welcome_admin")] == ["jane.smith@nhs.net"]
    assert [m.to_address for m in sent(db, "outcome_completed")] == [MANAGER[1]]


def test_html_reply_with_the_word_only_in_the_quote(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    arrive(db, config, env, email(MANAGER, "Form", "Attached", pdf="gpp-acroform.pdf"))
    (request,) = sent(db, "approval_request")
    html = (
        '<div dir="ltr"><br></div><div class="gmail_quote"><blockquote>APPROVE</blockquote></div>'
    )
    answer = email(
        PARTNER,
        f"RE: {request.subject}",
        "\n> APPROVE\n",
        html=html,
        in_reply_to=request.message_id,
    )
    arrive(db, config, env, answer)
    case = the_case(db, MANAGER[1])
    assert case.state == "triage"
    with db.transaction() as session:
        assert directory.admins(session, "A81001", "gpp") == []


def test_two_from_addresses_in_real_headers(db: Database, config: Config, env: WorkflowEnv) -> None:
    arrive(db, config, env, email(MANAGER, "Form", "Attached", pdf="gpp-acroform.pdf"))
    (request,) = sent(db, "approval_request")
    arrive(
        db,
        config,
        env,
        reply_to(request, PARTNER, "APPROVE", extra_from="Mallory <mallory@evil.example>"),
    )
    case = the_case(db, MANAGER[1])
    assert case.state != "completed"
    failed = {
        e.data.get("check") for e in case.events if e.event == "check" and not e.data.get("passed")
    }
    assert "sender_parsed" in failed


def test_user_admin_form_sets_admins_and_replaces_the_main_contact(
    db: Database,
    config: Config,
    env: WorkflowEnv,
) -> None:
    arrive(
        db,
        config,
        env,
        email(MANAGER, "User Administrator Request Form", "Please see.", pdf="uar-acroform.pdf"),
    )
    (request,) = sent(db, "approval_request")
    assert request.to_address == GUARDIAN[1]
    arrive(db, config, env, reply_to(request, GUARDIAN, "YES I approve"))
    assert the_case(db, MANAGER[1]).state == "completed"
    with db.transaction() as session:
        assert sorted(p.email for p in directory.admins(session, "B82005", "gpp")) == [
            "aisha.rahman2@nhs.net",
            "chloe.evans@nhs.net",
        ]
        assert [p.email for p in directory.admins(session, "B82005", "pl")] == [
            "chloe.evans@nhs.net"
        ]
        assert directory.main_contact(session, "B82005").email == "mike.dunn@nhs.net"
    assert [m.to_address for m in sent(db, "main_contact_replaced")] == ["old.contact@nhs.net"]
    welcomes = {m.to_address: m for m in sent(db, "welcome_admin")}
    assert sorted(welcomes) == ["aisha.rahman2@nhs.net", "chloe.evans@nhs.net"]
    # One welcome for the nominee given two services, naming both roles.
    assert "GPP Practice User Administrator and PL Organisation Administrator" in (
        welcomes["chloe.evans@nhs.net"].subject
    )


def test_pcn_form_from_the_ael_contact_is_her_approval_once_she_answers_its_code(
    db: Database,
    config: Config,
    env: WorkflowEnv,
) -> None:
    """Under `authserv-id` the receiving server vouches for her From, never for whom she
    sent it to (her mail to the PCN, replayed into the inbox, passes DMARC too): she is
    asked with a code like any approver, and her answer grants the roles."""
    arrive(
        db,
        config,
        env,
        email(ICB, "PCN user admin request", "Approved by the ICB.", pdf="pcn-acroform.pdf"),
    )
    case = the_case(db, ICB[1])
    assert case.state == "awaiting_approval", case.reason
    (request,) = sent(db, "approval_request", to=ICB[1])
    with db.transaction() as session:
        assert directory.admins(session, "U12345", "pcn") == []

    arrive(db, config, env, reply_to(request, ICB, "Approved"))
    assert the_case(db, ICB[1]).state == "completed"
    with db.transaction() as session:
        assert len(directory.admins(session, "U12345", "pcn")) == 2


def test_pcn_form_from_the_ael_address_failing_dmarc_goes_to_a_person(
    db: Database,
    config: Config,
    env: WorkflowEnv,
) -> None:
    arrive(
        db,
        config,
        env,
        email(
            ICB,
            "PCN user admin request",
            "Approved by the ICB.",
            pdf="pcn-acroform.pdf",
            dmarc="fail",
        ),
    )
    case = the_case(db, ICB[1])
    assert case.state == "triage"
    assert "nobody vouched" in case.reason
    assert sent(db, "approval_request") == []
    with db.transaction() as session:
        assert directory.admins(session, "U12345", "pcn") == []


def test_copier_scan_is_read_and_the_approver_sees_the_values_read(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    arrive(db, config, env, email(MANAGER, "GPP form", "Scan.", pdf="gpp-scan-200dpi.pdf"))
    case = the_case(db, MANAGER[1])
    # A typed form, printed, signed and scanned: routed like a fillable one.
    assert (case.kind, case.state) == ("gpp_admin_form", "awaiting_approval"), case.reason
    assert case.fields["readings"]["nominees.0.email"]["source"] == "ocr"
    (ack,) = sent(db, "acknowledgement")
    assert "We read your scanned form by machine (OCR) as:" in ack.body_text
    assert "jane.smith@nhs.net" in ack.body_text
    (request,) = sent(db, "approval_request")
    assert request.to_address == PARTNER[1]
    assert "read by machine (OCR)" in request.body_text
    assert "Nominee's email address: jane.smith@nhs.net" in request.body_text
    assert "Practice code (ODS): A81001" in request.body_text
    # The name the form gives the practice is free text checked against nothing: not shown.
    assert case.fields["readings"]["organisation_name"]["source"] == "ocr"
    assert "Practice name:" not in request.body_text + ack.body_text


def test_scanned_form_is_read_by_ocr_and_a_person_checks_what_was_unclear(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    arrive(db, config, env, email(MANAGER, "GPP form", "Scan attached.", pdf="gpp-scan.pdf"))
    case = the_case(db, MANAGER[1])
    # A low-resolution scan: read, but not every value clearly, so a person checks it.
    assert (case.kind, case.state) == ("gpp_admin_form", "triage")
    assert "scan" in case.reason
    readings = case.fields["readings"]
    assert readings["organisation_name"]["source"] == "ocr"
    assert {"value", "confidence", "page", "box"} <= set(readings["organisation_name"])
    (ack,) = sent(db, "acknowledgement")
    assert "We read your scanned form by machine (OCR) as:" in ack.body_text
    assert "If we have read anything wrong, please reply to this email" in ack.body_text
    assert sent(db, "approval_request") == []


def test_unsigned_form_asks_for_part_b_with_the_blank_form(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    arrive(db, config, env, email(MANAGER, "GPP form", "Attached", pdf="gpp-unsigned.pdf"))
    case = the_case(db, MANAGER[1])
    assert case.state == "needs_info"
    (asked,) = sent(db, "needs_info")
    assert "Part B is not signed" in asked.body_text
    assert asked.attachments == ["gpp-user-admin-certification.pdf"]
    arrive(
        db,
        config,
        env,
        email(
            MANAGER,
            f"RE: [{case.ref}] More information",
            "Now signed.",
            pdf="gpp-acroform.pdf",
            in_reply_to=asked.message_id,
        ),
    )
    assert the_case(db, MANAGER[1]).state == "awaiting_approval"


def test_a_batch_of_forms_is_read_side_by_side_and_read_as_each_alone(
    db: Database, config: Config, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forms of one batch are read in the read-ahead's threads while the messages
    before them are worked (forms.readahead), each once, and what each case is opened
    from is what reading that form alone gives."""
    names = ["gpp-acroform.pdf", "gpp-scan.pdf", "pcn-scan.pdf", "gpp-flattened-odd-case.pdf"]
    senders = [(f"Sender {n}", f"sender{n}@riverside.nhs.net") for n in range(len(names))]
    read_by: list[str] = []
    real = pdf_reader._read_attachment_now

    def noted(data: bytes, limits: forms.PdfLimits) -> forms.ParsedRequest:
        read_by.append(threading.current_thread().name)
        return real(data, limits)

    monkeypatch.setattr(pdf_reader, "_read_attachment_now", noted)
    arrive(
        db,
        config,
        env,
        *(
            email(s, "Our form", "Form attached.", pdf=n)
            for s, n in zip(senders, names, strict=True)
        ),
    )
    assert len(read_by) == len(names)  # each form read once
    assert "forms-ahead" in read_by
    for sender, name in zip(senders, names, strict=True):
        alone = forms.read_attachment((CORPUS / name).read_bytes(), env.pdf_limits)
        case = the_case(db, sender[1])
        assert alone.kind is not None and case.kind == alone.kind
        assert {k: case.fields.get(k) for k in alone.fields} == alone.fields


def test_only_the_forms_of_requests_and_replies_are_read_ahead(env: WorkflowEnv) -> None:
    """An out-of-office or a bounce reads no form: its attachments never reach the PDF
    workers ahead of the forms that will be read."""
    mail = parse_mail(email(MANAGER, "Out of office", "Away.", pdf="gpp-acroform.pdf"))
    handler = WorkflowHandler(env)
    for kind in (MessageKind.AUTOMATIC, MessageKind.BOUNCE, MessageKind.APPROVAL_ANSWER):
        with handler.read_ahead([(mail, Classification(kind, "not read"))], 30.0):
            assert forms.current_read_ahead() is None
    with handler.read_ahead([(mail, Classification(MessageKind.NEW_REQUEST, "a request"))], 30.0):
        ahead = forms.current_read_ahead()
        assert ahead is not None
        taken = ahead.take(mail.attachments[0].data, env.pdf_limits or forms.PdfLimits())
        assert taken is not None and taken.kind == "gpp_admin_form"
    assert forms.current_read_ahead() is None
