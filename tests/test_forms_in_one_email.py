"""Emails carrying forms: more than one form, a form's value typed with spaces, and a box
saved ticked but drawn empty."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pypdf
from pypdf.generic import BooleanObject, NameObject

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from make_form_corpus import GPP_VALUES, fill_acroform

import forms
from core.db import Database
from core.inbound import MessageKind
from forms.definitions import by_version
from intake.mailparse import MailAttachment
from tests.pdf_tampering import from_an_ael_contact
from tests.test_workflow_helpers import (
    MANAGER,
    case_of,
    deliver,
    events,
    holders,
    mail_from,
    outbox,
)
from workflow.env import WorkflowEnv

CORPUS = Path(__file__).parent / "corpus" / "forms"
PCN = CORPUS / "pcn-acroform.pdf"
SEEN = "emma.clarke4@nhs.net"
PADDED = SEEN + " " * 90 + ".evil.example"


def pcn_typed(value: str) -> bytes:
    """The PCN corpus form with nominee 2's address typed as `value`; the box's appearance
    drawn by pypdf as any form filler draws it (one Tj in the box's clip)."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(PCN))
    writer.update_page_form_field_values(writer.pages[0], {"nominee2_email": value})
    writer._root_object["/AcroForm"][NameObject("/NeedAppearances")] = BooleanObject(False)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_address_whose_tail_is_pushed_out_of_its_box_by_spaces_is_not_read_whole() -> None:
    """The box shows 'emma.clarke4@nhs.net' (ninety spaces push the rest past the box's
    right edge); email_candidate() squashes the spaces and the reader takes
    'emma.clarke4@nhs.net.evil.example' with no finding."""
    request = forms.read_pdf(pcn_typed(PADDED))
    read = [n["email"] for n in request.fields["nominees"]]
    assert read[1] == SEEN or any(f.field == "nominees.1.email" for f in request.findings), (
        read,
        request.findings,
    )


def test_pcn_form_with_padded_address_from_an_ael_contact_is_not_applied(db: Database) -> None:
    outcome = from_an_ael_contact(db, pcn_typed(PADDED))
    assert SEEN + ".evil.example" not in holders(db, "U12345", "pcn"), outcome


def gpp(**values: object) -> bytes:
    definition = by_version("PCSE-UMF-GPP v1")
    assert definition is not None
    return fill_acroform(definition, {**GPP_VALUES, **values})


def test_two_different_forms_in_one_email_go_to_a_person(db: Database, env: WorkflowEnv) -> None:
    """Two certification forms for one practice naming different people (say the second
    is the corrected one). Which the practice means cannot be told: a caseworker asks, and
    no approver is asked meanwhile."""
    first = gpp()  # Jane Smith
    second = gpp(nominee_name="Ravi Shah", nominee_email="ravi.shah@nhs.net")
    mail = mail_from(
        MANAGER,
        subject="GPP user admin form (corrected)",
        text="Hello, please use the attached form. Thanks, Mo",
        attachments=[
            MailAttachment("form.pdf", "application/pdf", first),
            MailAttachment("form-corrected.pdf", "application/pdf", second),
        ],
    )
    outcome = deliver(db, env, mail, MessageKind.NEW_REQUEST)
    ref = outcome.split(" ")[0].rstrip(":")
    assert case_of(db, ref).state == "triage", outcome
    assert outbox(db, "approval_request") == []
    reasons = [e for e in events(db, ref) if "forms that ask for different things" in str(e)]
    assert reasons, events(db, ref)


def test_two_copies_of_one_form_are_read_as_one(db: Database, env: WorkflowEnv) -> None:
    mail = mail_from(
        MANAGER,
        subject="GPP user admin form",
        text="Hello, please find attached. Thanks, Mo",
        attachments=[
            MailAttachment("form.pdf", "application/pdf", gpp()),
            MailAttachment("form copy.pdf", "application/pdf", gpp()),
        ],
    )
    outcome = deliver(db, env, mail, MessageKind.NEW_REQUEST)
    ref = outcome.split(" ")[0].rstrip(":")
    assert case_of(db, ref).state == "awaiting_approval", outcome


UAR = CORPUS / "uar-acroform.pdf"


def uar_box_saved_ticked_but_drawn_empty(name: str) -> bytes:
    """A checkbox whose saved value (/V) is /Yes while the state it draws (/AS) is /Off: every
    viewer shows an empty box."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(UAR))
    for page in writer.pages:
        for annot in page.get("/Annots", []):
            widget = annot.get_object()
            if widget.get("/T") == name:
                widget[NameObject("/V")] = NameObject("/Yes")
                widget[NameObject("/AS")] = NameObject("/Off")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_service_box_the_page_shows_empty_is_not_read_as_ticked() -> None:
    """UAR corpus form: admin 1 has GPP and PL ticked, OPH empty. With OPH's /V set to /Yes
    and its drawn state left /Off, the page still shows OPH empty; the reader adds 'oph'."""
    request = forms.read_pdf(uar_box_saved_ticked_but_drawn_empty("admin1_oph"))
    services = request.fields["nominees"][0]["services"]
    assert services == ["gpp", "pl"] or request.findings, (services, request.findings)
