"""The demo's sample mail: requests as practices, PCNs and ICBs send them, and approvers' answers.

Every message is built here as real RFC 5322 bytes, the way a mail client would send it:
forms are the shipped blank PDFs with their fields filled (or flattened, or broken),
bodies are written as people write them, with greetings, signatures and disclaimers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid

from pypdf import PdfReader, PdfWriter

from forms.blanks import blank_form_path
from forms.definitions import definitions

INBOX = "pcse.portalenquiries@nhs.net"

DISCLAIMER = (
    "********************************************************************\n"
    "This message may contain confidential information. If you are not the\n"
    "intended recipient please inform the sender that you have received the\n"
    "message in error before deleting it. Please do not disclose, copy or\n"
    "distribute information in this e-mail or take any action in relation to\n"
    "its contents.\n"
    "********************************************************************"
)


@dataclass(frozen=True)
class Answer:
    """How an approver answers the approval request on a story's case."""

    decision: str  # "approve" or "reject"
    text: str  # what the approver writes above the quoted original
    style: str  # "plain", "outlook" or "gmail": how the client quotes the original


@dataclass(frozen=True)
class Story:
    key: str
    title: str
    sender_name: str
    sender: str
    build: Callable[[Story, str], EmailMessage]
    answer: Answer | None = None


# --------------------------------------------------------------------------- forms


def fill_pdf(blank: bytes, values: dict[str, str | bool], *, flatten: bool = False) -> bytes:
    """The blank fillable PDF with its AcroForm fields set (True ticks a checkbox).

    With `flatten`, each field's appearance is drawn onto the page and the fields are
    removed, as "Print to PDF" does: the values survive only as text on the page.
    """
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(blank)))
    on_states = _checkbox_on_states(writer)
    fields = {
        name: (on_states.get(name, "/Yes") if value else "/Off")
        if isinstance(value, bool)
        else value
        for name, value in values.items()
    }
    writer.update_page_form_field_values(None, fields, auto_regenerate=False, flatten=flatten)
    if flatten:
        writer.remove_annotations(subtypes="/Widget")
        del writer.root_object["/AcroForm"]
    else:
        writer.set_need_appearances_writer(True)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _checkbox_on_states(writer: PdfWriter) -> dict[str, str]:
    """Each checkbox's "on" appearance name (forms use /Yes, /On, /1 ...)."""
    found: dict[str, str] = {}
    for page in writer.pages:
        for ref in page.get("/Annots") or []:
            annot = ref.get_object()
            field = annot if "/T" in annot else annot.get("/Parent", annot).get_object()
            if field.get("/FT") != "/Btn" or "/AP" not in annot:
                continue
            states = [str(s) for s in annot["/AP"].get("/N", {}) if s != "/Off"]
            if states:
                found[str(field["/T"])] = states[0]
    return found


# --------------------------------------------------------------------------- messages


def _message(story: Story, to: str, subject: str, text: str) -> EmailMessage:
    """A plain email from the story's sender, as an ordinary mail client writes it."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((story.sender_name, story.sender))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=story.sender.rsplit("@", 1)[1])
    msg["MIME-Version"] = "1.0"
    msg.set_content(text)
    return msg


def _attach_pdf(msg: EmailMessage, data: bytes, filename: str) -> EmailMessage:
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return msg


def _signature(name: str, *lines: str) -> str:
    return "\n".join(["Kind regards,", "", name, *lines, "", DISCLAIMER])


def pl_request(story: Story, to: str) -> EmailMessage:
    text = (
        "Hello,\n\n"
        "We don't currently have a PL Organisation Administrator at the practice. Please could "
        "you set up our practice manager with the role.\n\n"
        "Practice: Riverside Medical Centre\n"
        "Practice code: A81001\n"
        "Name: Hannah Lee\n"
        "Email: hannah.lee@nhs.net\n\n"
        "Many thanks for your help.\n\n"
        + _signature(
            story.sender_name,
            "Operations Manager",
            "Riverside Medical Centre",
            "Tel: 0191 496 0000",
        )
    )
    return _message(story, to, "PL Organisation Administrator request - A81001", text)


def oph_request(story: Story, to: str) -> EmailMessage:
    text = (
        "Hi,\n\n"
        "Could you please give my colleague Sophie Turner "
        "(sophie.turner@clearview-opticians.co.uk) the User Management (Organisation) role "
        "for Ophthalmic Payments? We are Clearview Opticians, contractor number TP7011.\n\n"
        "Thanks,\n" + story.sender_name + "\nClearview Opticians\n"
    )
    return _message(story, to, "User management role for Ophthalmic Payments", text)


def main_contact_change(story: Story, to: str) -> EmailMessage:
    text = (
        "Good morning,\n\n"
        "Tom Baker retires at the end of the month, so please change the main contact for "
        "Hillview Surgery.\n\n"
        "Organisation code: A81002\n"
        "New main contact: Lisa Moore\n"
        "Email address: lisa.moore@nhs.net\n\n"
        + _signature(story.sender_name, "Practice Business Manager", "Hillview Surgery")
    )
    return _message(story, to, "Change of main contact - Hillview Surgery A81002", text)


def out_of_office(story: Story, to: str) -> EmailMessage:
    msg = _message(
        story,
        to,
        "Automatic reply: PCSE Online access",
        "Thank you for your email. I am out of the office until Monday 8 December with no "
        "access to email. For anything urgent please call the practice on 0191 496 0100.\n",
    )
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    return msg


def performer_question(story: Story, to: str) -> EmailMessage:
    text = (
        "Hello,\n\n"
        "I am a newly qualified GP and start as a salaried GP in January. How do I get onto the "
        "Performers List? Do I need a user account on PCSE Online first, and can my practice "
        "set that up for me?\n\n"
        "Best wishes,\n" + story.sender_name + "\n"
    )
    return _message(story, to, "Joining the performers list", text)


def unreadable_pdf(story: Story, to: str) -> EmailMessage:
    msg = _message(
        story,
        to,
        "GPP user admin form - Harbour Lane Surgery",
        "Hi,\n\nPlease find our completed form attached.\n\n"
        + _signature(story.sender_name, "Harbour Lane Surgery"),
    )
    # What a failed scan-to-email upload looks like: a PDF header, then a cut-off body.
    broken = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nstream\n"
    return _attach_pdf(msg, broken + bytes(range(256)) * 8, "GPP certification form.pdf")


# --------------------------------------------------------------------------- delivery


def stamp(message: bytes, authserv_id: str) -> bytes:
    """What the receiving mail server adds on delivery: its Authentication-Results verdict
    (SPF, DKIM and DMARC passed for the From domain), at the top of the header."""
    sender = message_from_bytes(message, policy=policy.default)["From"].addresses[0]
    domain = sender.domain.lower()
    header = (
        f"Authentication-Results: {authserv_id}; spf=pass smtp.mailfrom={domain}; "
        f"dkim=pass header.d={domain}; dmarc=pass header.from={domain}\r\n"
    )
    return header.encode() + message


# --------------------------------------------------------------------------- approvers' replies


def approver_reply(request: bytes, answer: Answer) -> bytes:
    """The approver's answer to an approval request, quoting it the way their client does."""
    original = message_from_bytes(request, policy=policy.default)
    approver_name, approver = getaddresses([str(original["To"])])[0]
    reply_to = str(original.get("Reply-To") or original["From"])
    body = original.get_body(preferencelist=("plain",))
    quoted_text = body.get_content() if body is not None else ""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((approver_name, approver))
    msg["To"] = reply_to
    msg["Subject"] = "RE: " + str(original["Subject"])
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=approver.rsplit("@", 1)[1])
    msg["In-Reply-To"] = str(original["Message-ID"])
    references = str(original.get("References") or "").split()
    msg["References"] = " ".join([*references, str(original["Message-ID"])])
    msg["MIME-Version"] = "1.0"
    quote = QUOTERS[answer.style]
    msg.set_content(f"{answer.text}\n\n{approver_name}\n\n" + quote(original, quoted_text))
    return msg.as_bytes()


def _quote_outlook(original: EmailMessage, text: str) -> str:
    sent = original["Date"].datetime.strftime("%d %B %Y %H:%M")
    return (
        "________________________________\n"
        f"From: {original['From']}\n"
        f"Sent: {sent}\n"
        f"To: {original['To']}\n"
        f"Subject: {original['Subject']}\n\n" + text
    )


def _quote_gmail(original: EmailMessage, text: str) -> str:
    when = original["Date"].datetime.strftime("%a, %d %b %Y at %H:%M")
    lines = "\n".join(("> " + line).rstrip() for line in text.splitlines())
    return f"On {when}, {original['From']} wrote:\n\n{lines}\n"


def _quote_iphone(original: EmailMessage, text: str) -> str:
    when = original["Date"].datetime.strftime("%d %b %Y, at %H:%M")
    lines = "\n".join(("> " + line).rstrip() for line in text.splitlines())
    return f"Sent from my iPhone\n\n> On {when}, {original['From']} wrote:\n>\n{lines}\n"


QUOTERS: dict[str, Callable[[EmailMessage, str], str]] = {
    "outlook": _quote_outlook,
    "gmail": _quote_gmail,
    "iphone": _quote_iphone,
}


# --------------------------------------------------------------------------- form requests


def filled_form(blank_name: str, values: dict[str, str | bool], *, flatten: bool = False) -> bytes:
    """A shipped blank form filled in; every value must name one of its fields."""
    definition = next(d for d in definitions() if d.blank == blank_name)
    names = {f.name for f in definition.fields}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{blank_name} has no field(s) {', '.join(unknown)}")
    return fill_pdf(blank_form_path(blank_name).read_bytes(), values, flatten=flatten)


def _today() -> str:
    return datetime.now(UTC).strftime("%d/%m/%Y")


def _gpp_values(
    practice: str, code: str, nominee: tuple[str, str], signer: tuple[str, str, str]
) -> dict[str, str | bool]:
    return {
        "organisation_name": practice,
        "organisation_code": code,
        "nominee_name": nominee[0],
        "nominee_email": nominee[1],
        "signer_name": signer[0],
        "signer_capacity": signer[1],
        "signer_email": signer[2],
        "signer_date": _today(),
        "declaration": True,
    }


def form_values(key: str) -> dict[str, str | bool]:
    """What each story's form says, by AcroForm field name."""
    if key == "gpp_form":
        return _gpp_values(
            "Riverside Medical Centre",
            "A81001",
            ("Emma Clarke", "emma.clarke@nhs.net"),
            ("Dr Priya Shah", "GP Partner", "priya.shah@nhs.net"),
        )
    if key == "flattened":
        return _gpp_values(
            "Moorside Health Centre",
            "a81003",
            ("David Lowe", "david.lowe@nhs.net"),
            ("Janet Okoro", "Company Director", "janet.okoro@nhs.net"),
        )
    if key == "fifth_admin":
        return _gpp_values(
            "Parkway Practice",
            "A81004",
            ("Zoe Adams", "zoe.adams@nhs.net"),
            ("Dr Sam Patel", "GP Partner", "sam.patel@nhs.net"),
        )
    if key == "user_admin_form":
        return {
            "organisation_name": "Beacon Family Practice",
            "organisation_code": "A81005",
            "admin1_name": "Chloe Price",
            "admin1_email": "chloe.price@nhs.net",
            "admin1_gpp": True,
            "admin1_pl": True,
            "admin1_oph": False,
            "main_contact_name": "Aisha Malik",
            "main_contact_email": "aisha.malik@nhs.net",
            "signer_name": "Dr Fiona Walsh",
            "signer_capacity": "Caldicott Guardian",
            "signer_email": "fiona.walsh@nhs.net",
            "signer_date": _today(),
            "declaration": True,
        }
    if key == "pcn_form":
        return {
            "organisation_name": "Coastal Primary Care Network",
            "organisation_code": "U12345",
            "nominee1_name": "Ruth Bennett",
            "nominee1_email": "ruth.bennett@nhs.net",
            "nominee2_name": "Imran Ali",
            "nominee2_email": "imran.ali@nhs.net",
            "signer_name": "Gill Hart",
            "icb_code": "QHM",
            "signer_email": "gill.hart@nhs.net",
            "signer_date": _today(),
            "declaration": True,
        }
    raise KeyError(key)


def gpp_form(story: Story, to: str) -> EmailMessage:
    values = form_values(story.key)
    pdf = filled_form("gpp-user-admin-certification.pdf", values, flatten=story.key == "flattened")
    practice = values["organisation_name"]
    msg = _message(
        story,
        to,
        f"GPP Practice User Administrator Certification form - {practice}",
        "Dear PCSE,\n\nPlease find attached our completed GPP Practice User Administrator "
        "Certification form, signed by one of our partners.\n\n"
        + _signature(story.sender_name, "Practice Manager", str(practice)),
    )
    return _attach_pdf(msg, pdf, "GPP practice user admin certification.pdf")


def user_admin_form(story: Story, to: str) -> EmailMessage:
    values = form_values(story.key)
    pdf = filled_form("user-admin-request-form.pdf", values)
    msg = _message(
        story,
        to,
        "User Administrator Request Form - Beacon Family Practice A81005",
        "Hello,\n\nWe have no user administrators set up yet. Our User Administrator Request "
        "Form is attached, signed by our Caldicott Guardian.\n\n"
        + _signature(story.sender_name, "Practice Manager", "Beacon Family Practice"),
    )
    return _attach_pdf(msg, pdf, "User Administrator Request Form.pdf")


def pcn_form(story: Story, to: str) -> EmailMessage:
    values = form_values(story.key)
    pdf = filled_form("pcn-user-admin-request.pdf", values)
    msg = _message(
        story,
        to,
        "PCN user admin request - Coastal PCN U12345 (ICB approved)",
        "Hi,\n\nI approve the attached PCN user admin request from Coastal Primary Care "
        "Network, which has no PCN user admin at present, and submit it on the ICB's behalf.\n\n"
        + _signature(
            story.sender_name,
            "Primary Care Contracts Manager",
            "NHS North East and North Cumbria ICB",
        ),
    )
    return _attach_pdf(msg, pdf, "PCN user admin request - U12345.pdf")


# --------------------------------------------------------------------------- the stories

APPROVE_PLAIN = Answer("approve", "APPROVE\n\nHappy to confirm this.", "gmail")
APPROVE_OUTLOOK = Answer(
    "approve",
    "APPROVE\n\nHappy to confirm this. Thanks.\n\nFiona",
    "outlook",
)
REJECT_LEFT = Answer(
    "reject",
    "REJECT - David Lowe left the practice at the end of October. "
    "We will send a new form for his successor.",
    "iphone",
)


def stories() -> list[Story]:
    """The demo's sample mail, in the order it arrives."""
    return [
        Story(
            "gpp_form",
            "GPP certification form (fields filled)",
            "Sarah Khan",
            "sarah.khan@nhs.net",
            gpp_form,
            APPROVE_PLAIN,
        ),
        Story(
            "user_admin_form",
            "User Administrator Request Form",
            "Mike Dunn",
            "mike.dunn@nhs.net",
            user_admin_form,
            APPROVE_OUTLOOK,
        ),
        Story(
            "flattened",
            "GPP form printed to PDF (flattened)",
            "Paul Wright",
            "paul.wright@nhs.net",
            gpp_form,
            REJECT_LEFT,
        ),
        Story(
            "pcn_form",
            "PCN request sent by an AEL contact",
            "Gill Hart",
            "gill.hart@nhs.net",
            pcn_form,
            APPROVE_PLAIN,
        ),
        Story(
            "pl_email",
            "PL Organisation Administrator by email",
            "Mark Dawson",
            "mark.dawson@nhs.net",
            pl_request,
            APPROVE_PLAIN,
        ),
        Story(
            "oph_email",
            "Ophthalmic User Management by email",
            "Daniel Brooks",
            "daniel.brooks@clearview-opticians.co.uk",
            oph_request,
            APPROVE_PLAIN,
        ),
        Story(
            "main_contact",
            "Main contact change",
            "Jo Fraser",
            "jo.fraser@nhs.net",
            main_contact_change,
            APPROVE_PLAIN,
        ),
        Story(
            "fifth_admin",
            "A fifth GPP admin",
            "Karen Hughes",
            "karen.hughes@nhs.net",
            gpp_form,
            APPROVE_PLAIN,
        ),
        Story(
            "out_of_office",
            "Out-of-office reply",
            "Peter Nolan",
            "peter.nolan@nhs.net",
            out_of_office,
        ),
        Story(
            "performer",
            "Performer registration question",
            "Dr Kwame Mensah",
            "kwame.mensah@nhs.net",
            performer_question,
        ),
        Story(
            "unreadable",
            "Unreadable PDF attachment",
            "Sue Collins",
            "sue.collins@nhs.net",
            unreadable_pdf,
        ),
    ]
