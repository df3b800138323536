"""A realistic backlog for the proofs: requests, PDF forms, replies and automatic replies.

Every message is real RFC 5322 bytes with a Message-ID of its own, addressed to the
inbox the way practices write: email requests for the organisations of a generated
directory, the shipped blank forms filled in (some flattened as "Print to PDF" does) and
the PDF corpus of the forms tests, replies that thread onto earlier requests, and
out-of-office answers and bounces that must be recorded but never answered.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from core.db import Database
from demo.mail import filled_form
from workflow.imports import import_ael, import_organisations, import_signers, import_users

INBOX = "pcse.portalenquiries@nhs.net"
ROOT = Path(__file__).resolve().parent.parent
FORM_CORPUS = ROOT / "tests" / "corpus" / "forms"
ICB = "QHM"
FIRST = (
    "Amy",
    "Ben",
    "Chloe",
    "Dev",
    "Ella",
    "Femi",
    "Grace",
    "Hari",
    "Iona",
    "Jack",
    "Kira",
    "Liam",
    "Maya",
    "Nia",
    "Owen",
    "Priya",
    "Rory",
    "Sara",
    "Tom",
    "Uma",
    "Will",
    "Zoe",
)
LAST = (
    "Adams",
    "Begum",
    "Clarke",
    "Davies",
    "Evans",
    "Fox",
    "Green",
    "Hughes",
    "Iqbal",
    "Jones",
    "Khan",
    "Lewis",
    "Moore",
    "Nash",
    "Owens",
    "Patel",
    "Reid",
    "Shah",
    "Taylor",
)

# Shares of each kind in the mix (they add up to 100).
MIX = (("email_request", 48), ("pdf_form", 20), ("reply", 18), ("automatic", 14))


@dataclass(frozen=True)
class Org:
    code: str
    name: str
    signer: tuple[str, str]  # name, email


@dataclass
class Backlog:
    messages: list[bytes] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    message_ids: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- directory


def organisations(count: int) -> list[Org]:
    found = []
    for number in range(count):
        first, last = FIRST[number % len(FIRST)], LAST[number % len(LAST)]
        found.append(
            Org(
                f"B{82000 + number}",
                f"{last} Street Surgery {number}",
                (f"Dr {first} {last}", f"{first.lower()}.{last.lower()}{number}@nhs.net"),
            )
        )
    return found


def write_directory(folder: Path, orgs: list[Org]) -> dict[str, Path]:
    """The directory as the CSVs `pcse directory import-*` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.csv" for name in ("organisations", "signers", "users", "ael")}
    with files["organisations"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "name", "type", "icb_code"])
        writer.writerow([ICB, "NHS Test Integrated Care Board", "icb", ""])
        writer.writerow(["U99001", "Harbour Primary Care Network", "pcn", ICB])
        for org in orgs:
            writer.writerow([org.code, org.name, "gp_practice", ICB])
    with files["signers"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["org_code", "name", "email", "capacity"])
        for org in orgs:
            writer.writerow([org.code, org.signer[0], org.signer[1], "gp_partner"])
    with files["users"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["org_code", "name", "email", "role"])
        for org in orgs[::3]:
            writer.writerow(
                [
                    org.code,
                    f"Manager of {org.code}",
                    f"manager.{org.code.lower()}@nhs.net",
                    "Main Contact",
                ]
            )
    with files["ael"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["icb_code", "name", "email", "ael_role"])
        writer.writerow([ICB, "Gill Hart", "gill.hart@nhs.net", "GP Payments – General"])
    return files


def load_directory(db: Database, orgs: list[Org], folder: Path) -> None:
    files = write_directory(folder, orgs)
    for importer, name in (
        (import_organisations, "organisations"),
        (import_users, "users"),
        (import_signers, "signers"),
        (import_ael, "ael"),
    ):
        with db.transaction() as session:
            report = importer(session, files[name], actor="proof")
        if report.errors:
            raise RuntimeError(f"{name}.csv did not load: {report.errors[0]}")


# --------------------------------------------------------------------------- messages


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}{rng.randrange(10000)}@nhs.net"


def _message(sender: tuple[str, str], subject: str, text: str) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr(sender)
    msg["To"] = f"PCSE Enquiries <{INBOX}>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender[1].rsplit("@", 1)[1])
    msg["MIME-Version"] = "1.0"
    msg.set_content(text)
    return msg


def email_request(rng: random.Random, org: Org) -> EmailMessage:
    sender = _person(rng)
    nominee = _person(rng)
    choice = rng.randrange(5)
    if choice == 0:
        subject = f"PL Organisation Administrator request - {org.code}"
        text = (
            f"Hello,\n\nPlease set up {nominee[0]} ({nominee[1]}) as PL Organisation "
            f"Administrator for {org.name}, practice code {org.code}.\n\nThanks,\n"
            f"{sender[0]}\nPractice Manager\n"
        )
    elif choice == 1:
        subject = f"Change of main contact - {org.name} {org.code}"
        text = (
            f"Good morning,\n\nPlease change the main contact for {org.name}.\n\n"
            f"Organisation code: {org.code}\nNew main contact: {nominee[0]}\n"
            f"Email address: {nominee[1]}\n\nKind regards,\n{sender[0]}\n"
        )
    elif choice == 2:
        subject = "Joining the performers list"
        text = (
            "Hello,\n\nI start as a salaried GP next month. How do I get onto the "
            f"Performers List?\n\nBest wishes,\n{sender[0]}\n"
        )
    elif choice == 3:
        subject = f"Access to PCSE Online for {org.name}"
        text = (
            f"Hi,\n\nCould {nominee[0]} ({nominee[1]}) have access to PCSE Online for "
            f"{org.code}? She has joined the admin team.\n\nThanks,\n{sender[0]}\n"
        )
    else:
        subject = "Question about our account"
        text = (
            f"Hello,\n\nWe cannot sign in to PCSE Online since last week. Can you help?"
            f"\n\n{sender[0]}\n{org.name}\n"
        )
    return _message(sender, subject, text)


def _form_values(rng: random.Random, org: Org, blank: str) -> dict[str, str | bool]:
    nominee = _person(rng)
    today = datetime.now(UTC).strftime("%d/%m/%Y")
    if blank == "gpp-user-admin-certification.pdf":
        return {
            "organisation_name": org.name,
            "organisation_code": org.code,
            "nominee_name": nominee[0],
            "nominee_email": nominee[1],
            "signer_name": org.signer[0],
            "signer_capacity": "GP Partner",
            "signer_email": org.signer[1],
            "signer_date": today,
            "declaration": True,
        }
    if blank == "user-admin-request-form.pdf":
        contact = _person(rng)
        return {
            "organisation_name": org.name,
            "organisation_code": org.code,
            "admin1_name": nominee[0],
            "admin1_email": nominee[1],
            "admin1_gpp": True,
            "admin1_pl": rng.random() < 0.5,
            "admin1_oph": False,
            "main_contact_name": contact[0],
            "main_contact_email": contact[1],
            "signer_name": org.signer[0],
            "signer_capacity": "GP Partner",
            "signer_email": org.signer[1],
            "signer_date": today,
            "declaration": True,
        }
    second = _person(rng)
    return {
        "organisation_name": "Harbour Primary Care Network",
        "organisation_code": "U99001",
        "nominee1_name": nominee[0],
        "nominee1_email": nominee[1],
        "nominee2_name": second[0],
        "nominee2_email": second[1],
        "signer_name": "Gill Hart",
        "icb_code": ICB,
        "signer_email": "gill.hart@nhs.net",
        "signer_date": today,
        "declaration": True,
    }


class FormPool:
    """Filled forms made once and reused: filling a PDF costs more than sending it."""

    def __init__(self, rng: random.Random, orgs: list[Org], size: int = 24) -> None:
        blanks = (
            "gpp-user-admin-certification.pdf",
            "user-admin-request-form.pdf",
            "pcn-user-admin-request.pdf",
        )
        self.forms: list[tuple[str, bytes]] = []
        for number in range(size):
            blank = blanks[number % len(blanks)]
            org = rng.choice(orgs)
            pdf = filled_form(blank, _form_values(rng, org, blank), flatten=number % 4 == 3)
            self.forms.append((f"{blank.removesuffix('.pdf')} {org.code}.pdf", pdf))
        self.forms += [(path.name, path.read_bytes()) for path in sorted(FORM_CORPUS.glob("*.pdf"))]

    def pick(self, rng: random.Random) -> tuple[str, bytes]:
        return rng.choice(self.forms)


def pdf_form(rng: random.Random, pool: FormPool) -> EmailMessage:
    filename, data = pool.pick(rng)
    sender = _person(rng)
    msg = _message(
        sender,
        f"Completed form - {filename.removesuffix('.pdf')}",
        f"Dear PCSE,\n\nPlease find our completed form attached.\n\n{sender[0]}\n",
    )
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return msg


def reply(rng: random.Random, original: EmailMessage) -> EmailMessage:
    """The requester writing again on the thread of an earlier request."""
    sender = (
        str(original["From"]).split("<")[0].strip().strip('"'),
        str(original["From"]).split("<")[-1].rstrip(">"),
    )
    nominee = _person(rng)
    msg = _message(
        sender,
        f"RE: {original['Subject']}",
        f"Hello again,\n\nThe email address is {nominee[1]} and the practice code "
        f"is as before.\n\n{sender[0]}\n\n> earlier message quoted here\n",
    )
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["References"] = str(original["Message-ID"])
    return msg


def automatic(rng: random.Random, original: EmailMessage | None) -> EmailMessage:
    if original is not None and rng.random() < 0.3:
        return _bounce(original)
    sender = _person(rng)
    subject = f"Automatic reply: {original['Subject']}" if original else "Out of Office"
    msg = _message(
        sender, subject, "I am out of the office until Monday with no access to email.\n"
    )
    msg["Auto-Submitted"] = "auto-replied"
    if original is not None:
        msg["In-Reply-To"] = str(original["Message-ID"])
    return msg


def _bounce(original: EmailMessage) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Mail Delivery System <mailer-daemon@mx.example.nhs.uk>"
    msg["To"] = INBOX
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="mx.example.nhs.uk")
    msg["Return-Path"] = "<>"
    msg["MIME-Version"] = "1.0"
    msg.set_content("This is the mail system. Your message could not be delivered.\n")
    msg.add_attachment(
        f"Message-ID: {original['Message-ID']}\r\nSubject: x\r\n".encode(),
        maintype="text",
        subtype="rfc822-headers",
    )
    return msg


def build(count: int, *, seed: int = 9, orgs: list[Org] | None = None) -> Backlog:
    """`count` messages in arrival order; replies and automatic answers follow their originals."""
    rng = random.Random(seed)
    orgs = orgs or organisations(200)
    pool = FormPool(rng, orgs)
    kinds = [kind for kind, share in MIX for _ in range(share)]
    backlog = Backlog()
    earlier: list[EmailMessage] = []
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind in ("reply", "automatic") and not earlier:
            kind = "email_request"
        if kind == "email_request":
            msg = email_request(rng, rng.choice(orgs))
        elif kind == "pdf_form":
            msg = pdf_form(rng, pool)
        elif kind == "reply":
            msg = reply(rng, rng.choice(earlier[-200:]))
        else:
            msg = automatic(rng, rng.choice(earlier[-200:]) if rng.random() < 0.7 else None)
        if kind in ("email_request", "pdf_form"):
            earlier.append(msg)
        backlog.kinds[kind] += 1
        backlog.message_ids.append(str(msg["Message-ID"]))
        backlog.messages.append(msg.as_bytes())
    return backlog
