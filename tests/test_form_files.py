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
from workflow.opening import (
    MAX_FORM_FILES,
    TOO_MANY_FORMS,
    form_files,
    read_forms,
    unread_images,
)

FORM = (CORPUS / "gpp-acroform.pdf").read_bytes()
JUNK = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def png(width: int = 40, height: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG")
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


def test_the_largest_images_are_read_first_and_the_rest_are_noted() -> None:
    """Outlook puts a signature's logos and icons before the photograph of a form."""
    icons = [(f"image00{n}.png", png()) for n in range(MAX_FORM_FILES)]
    photo = ("IMG_2041.png", png(1200, 1600))
    mail = parse_mail(mail_with(*icons, photo))
    read, left = form_files(mail)
    assert read[0].filename == "IMG_2041.png"
    assert [a.filename for a in left] == [f"image00{MAX_FORM_FILES - 1}.png"]
    assert unread_images(mail) == [
        f"Attachment image00{MAX_FORM_FILES - 1}.png was not read as a form: {TOO_MANY_FORMS}."
    ]


def test_pdfs_keep_their_order() -> None:
    small, large = ("a.pdf", JUNK), ("b.pdf", JUNK + b"%" * 5000)
    read, _ = form_files(parse_mail(mail_with(small, large)))
    assert [a.filename for a in read] == ["a.pdf", "b.pdf"]
