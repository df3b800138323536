"""An approver's answer that carries something the service did not read (an attached
email, an attachment over the size limit, parts nested too deep) is not taken as clear:
what was not read may say "but not Jane", so a person reads it."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from pathlib import Path

import pytest

from core.db import Database
from intake.mailparse import MAX_DEPTH, parse_mail
from service.config import Config, from_mapping
from tests.test_workflow_helpers import OUR, TRUSTED
from tests.test_workflow_mail import MANAGER, PARTNER, arrive, email, mail_world, reply_to, sent
from tests.test_workflow_mail import the_case as case_of_requester
from workflow import directory
from workflow.env import WorkflowEnv


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


def _config(db: Database, tmp_path: Path, limit: int | None = None) -> Config:
    mapping: dict[str, object] = {
        "database": {"url": db.url},
        "mailboxes": [{"name": "enquiries", "address": OUR, "maildir": str(tmp_path / "maildir")}],
        "storage": {"raw_dir": str(tmp_path / "raw")},
        "security": {"sender_authentication": "authserv-id", "trusted_authserv_ids": [TRUSTED]},
    }
    if limit:
        mapping["limits"] = {"attachment_max_bytes": limit}
    return from_mapping(mapping)


def _granted(db: Database) -> list[str]:
    with db.transaction() as session:
        return [p.email for p in directory.admins(session, "A81001", "gpp")]


def _approval(db: Database, config: Config, env: WorkflowEnv) -> EmailMessage:
    """The partner's clear "Approved" to the approval request for a GPP form."""
    arrive(db, config, env, email(MANAGER, "GPP user admin form", "Form.", pdf="gpp-acroform.pdf"))
    (request,) = sent(db, "approval_request")
    raw = reply_to(request, PARTNER, "Approved. Thanks, Anil")
    reply = message_from_bytes(raw, policy=policy.default)
    assert isinstance(reply, EmailMessage)
    return reply


def _attached_email() -> EmailMessage:
    inner = EmailMessage()
    inner["From"] = "Jane Smith <jane.smith@nhs.net>"
    inner["Subject"] = "Leaving"
    inner.set_content("I leave the practice on Friday: please do not give me any access.")
    return inner


def _nested_document() -> MIMEMultipart:
    doc = MIMEApplication(b"%PDF-1.4 conditions", "pdf")
    doc.add_header("Content-Disposition", "attachment", filename="conditions.pdf")
    inner: MIMEApplication | MIMEMultipart = doc
    for _ in range(MAX_DEPTH + 2):
        wrapper = MIMEMultipart("mixed")
        wrapper.attach(inner)
        inner = wrapper
    assert isinstance(inner, MIMEMultipart)
    return inner


def _went_to_a_person(db: Database, because: str) -> None:
    case = case_of_requester(db, MANAGER[1])
    assert _granted(db) == []
    assert case.state == "triage"
    assert "part of it was not read" in (case.reason or "") and because in (case.reason or "")


def _attach_an_email(reply: EmailMessage) -> None:
    reply.add_attachment(_attached_email())  # an Outlook item: message/rfc822


def _attach_a_large_pdf(reply: EmailMessage) -> None:
    reply.add_attachment(
        b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024),
        maintype="application",
        subtype="pdf",
        filename="conditions-of-approval.pdf",
    )


def _attach_a_document_too_deep(reply: EmailMessage) -> None:
    reply.make_mixed()
    reply.attach(_nested_document())


@pytest.mark.parametrize(
    ("added", "limit", "because"),
    [
        (_attach_an_email, None, "an attached email"),
        (_attach_a_large_pdf, 1024 * 1024, "conditions-of-approval.pdf"),
        (_attach_a_document_too_deep, None, "nested more than"),
    ],
    ids=["attached email", "attachment over the limit", "nested too deep"],
)
def test_an_approval_with_a_part_not_read_goes_to_a_person(
    added: Callable[[EmailMessage], None],
    limit: int | None,
    because: str,
    db: Database,
    tmp_path: Path,
    env: WorkflowEnv,
) -> None:
    config = _config(db, tmp_path, limit=limit)
    reply = _approval(db, config, env)
    added(reply)
    arrive(db, config, env, bytes(reply))
    _went_to_a_person(db, because)


def test_a_clear_approval_read_whole_is_still_applied(
    db: Database, tmp_path: Path, env: WorkflowEnv
) -> None:
    config = _config(db, tmp_path)
    reply = _approval(db, config, env)
    assert parse_mail(bytes(reply)).unread_parts == []
    arrive(db, config, env, bytes(reply))
    assert _granted(db) != []


def test_what_a_message_holds_unread_is_listed() -> None:
    outer = EmailMessage()
    outer["From"] = "a@nhs.net"
    outer.set_content("Approved")
    outer.add_attachment(_attached_email())
    outer.add_attachment(b"x" * 3000, maintype="application", subtype="pdf", filename="big.pdf")
    outer.attach(_nested_document())
    mail = parse_mail(bytes(outer), attachment_max_bytes=1000)
    assert mail.unread_parts[0] == "an attached email, whose text was not read"
    assert any(p.startswith("big.pdf is 0.0 MB, over the limit") for p in mail.unread_parts)
    assert f"parts nested more than {MAX_DEPTH} levels deep were not read" in mail.unread_parts
    assert len(mail.unread_parts) == 3


def test_an_approval_with_a_document_sent_as_a_picture_goes_to_a_person(
    db: Database, tmp_path: Path, env: WorkflowEnv
) -> None:
    """A picture is taken for a signature's; a file sent as one under a document's name is
    a document."""
    config = _config(db, tmp_path)
    reply = _approval(db, config, env)
    reply.add_attachment(b"PK\x03\x04", maintype="image", subtype="png", filename="terms.docx")
    arrive(db, config, env, bytes(reply))
    case = case_of_requester(db, MANAGER[1])
    assert _granted(db) == [] and case.state == "triage"
    assert "comes with terms.docx" in (case.reason or "")


def test_an_approval_with_a_signature_s_picture_is_applied(
    db: Database, tmp_path: Path, env: WorkflowEnv
) -> None:
    config = _config(db, tmp_path)
    reply = _approval(db, config, env)
    reply.add_attachment(b"\x89PNG\r\n", maintype="image", subtype="png", filename="image001.png")
    arrive(db, config, env, bytes(reply))
    assert _granted(db) != []
