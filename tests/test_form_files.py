"""How many of an email's files are read as forms, and in what order.

Each file may take up to the PDF time limit inside its batch's transaction, so an email is
read for at most MAX_FORM_FILES of them, PDFs before images: a dozen hostile PDFs of a few
hundred bytes held SQLite's write lock for minutes.
"""

from __future__ import annotations

import io
from email.message import EmailMessage

from PIL import Image

from intake.mailparse import parse_mail
from tests.test_workflow_mail import CORPUS
from workflow.opening import MAX_FORM_FILES, TOO_MANY_FORMS, form_files, read_forms

FORM = (CORPUS / "gpp-acroform.pdf").read_bytes()
JUNK = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="PNG")
    return out.getvalue()


def mail_with(*files: tuple[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mo Manager <manager@riverside.nhs.net>"
    msg["To"] = "pcse.portalenquiries@nhs.net"
    msg["Subject"] = "Forms"
    msg.set_content("Forms attached.")
    for name, data in files:
        kind = ("image", "png") if name.endswith(".png") else ("application", "pdf")
        msg.add_attachment(data, maintype=kind[0], subtype=kind[1], filename=name)
    return msg.as_bytes()


def test_pdfs_past_the_cap_are_named_as_not_read() -> None:
    junk = [(f"junk-{n}.pdf", JUNK + bytes([n])) for n in range(MAX_FORM_FILES + 1)]
    mail = parse_mail(mail_with(*junk, ("form.pdf", FORM)))
    read, left = form_files(mail)
    assert len(read) == MAX_FORM_FILES
    assert [a.filename for a in left] == [f"junk-{MAX_FORM_FILES}.pdf", "form.pdf"]
    recognised, unreadable = read_forms(mail)
    assert recognised == []
    assert (f"junk-{MAX_FORM_FILES}.pdf", TOO_MANY_FORMS) in unreadable
    assert ("form.pdf", TOO_MANY_FORMS) in unreadable
    assert len(unreadable) == MAX_FORM_FILES + 2  # each junk PDF read says why, too


def test_pdfs_are_read_before_images_and_images_past_the_cap_are_left_alone() -> None:
    pictures = [(f"logo-{n}.png", png()) for n in range(MAX_FORM_FILES + 2)]
    mail = parse_mail(mail_with(*pictures, ("form.pdf", FORM)))
    read, left = form_files(mail)
    assert read[0].filename == "form.pdf" and len(left) == 3
    recognised, unreadable = read_forms(mail)
    assert [name for name, _ in recognised] == ["form.pdf"]
    assert unreadable == []
