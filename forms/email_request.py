"""read_email_request: an admin-setup request written in an email body, read into fields.

    read_email_request(subject, text, sender) -> ParsedRequest

`text` is the plain-text body (or text made from an HTML-only body with
core.htmltext.html_to_text); `sender` is the From address, with or without a display name.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

from core.catalogue import Service, admin_role
from core.states import CaseKind
from forms.email_handover import Handover, Side, read_handover
from forms.email_kinds import KindReading, as_kind, classify
from forms.email_orgs import CodeFound, find_code, find_name
from forms.email_people import (
    Person,
    asks_for_self,
    clean_person_name,
    dedupe,
    from_labels,
    from_text,
    name_for_address,
    name_from_address,
    named_without_address,
    own_address_given,
)
from forms.label_lines import label_lines
from forms.mailtext import MessageParts, split_message
from forms.model import Finding, ParsedRequest
from forms.normalise import ODS_PATTERNS, ORG_TYPE_WORDS, normalise_email

# A request is written in the first lines of a message; longer bodies are read this far.
MAX_TEXT = 30_000
MAX_SUBJECT = 500
FORWARDED_SUBJECT = re.compile(r"^\s*(?:(?:re|aw)\s*:\s*)*(?:fw|fwd)\s*:", re.I)
# Our own and PCSE's other inboxes are never nominees.
PCSE_ADDRESS = re.compile(r"^pcse[.\w-]*@nhs\.net$|^(?:no-?reply|do-?not-?reply)@", re.I)
SERVICE_OF_KIND: dict[str, Service] = {
    CaseKind.PL_ADMIN: Service.PL,
    CaseKind.OPH_ADMIN: Service.OPH,
}
REQUEST_WORDS = re.compile(r"[A-Za-z]{2,}")
GREETING = re.compile(
    r"^[ \t]*(?:hi|hello|dear|good[ \t]+(?:morning|afternoon|evening))\b[^\n]*$", re.I | re.M
)
TRIVIAL = re.compile(r"^(?:please\s+)?(?:see|find)\s+(?:the\s+)?attached\b|^attached\b", re.I)


def _sender(sender: str, parts: MessageParts) -> tuple[str | None, str | None]:
    """The sender's name and address; the name from the display name, else the sign-off."""
    display, address = parseaddr(sender or "")
    email = normalise_email(address) if address else None
    name = clean_person_name(display) if display else None
    if name is None and parts.sign_off_name:
        name = clean_person_name(parts.sign_off_name)
    if name is None and parts.signature:
        lines = [line.strip() for line in parts.signature.split("\n")[1:] if line.strip()]
        if lines:
            name = clean_person_name(lines[0])
    if name is None and email:
        name = name_from_address(email)
    return name, email


def _nominees(
    parts: MessageParts, sender_name: str | None, sender_email: str | None
) -> list[Person]:
    own = parts.own
    labels = label_lines(own)
    people = from_labels(labels)
    excluded = {sender_name.lower()} if sender_name else set()
    for person in people:
        if person.name is None and person.email:
            person.name = name_for_address(own, person.email, excluded)
    skip = {p.email for p in people if p.email} | {
        p.written_email for p in people if p.written_email
    }
    text_people = from_text(
        own, skip={s.lower() for s in skip if s}, excluded_names=excluded, sender_email=sender_email
    )
    text_people = [p for p in text_people if not (p.email and PCSE_ADDRESS.match(p.email))]
    people = dedupe(people + text_people)
    if not people and asks_for_self(own):
        people = [Person(sender_name, own_address_given(own) or sender_email, None, "sender")]
    if not people:
        named = named_without_address(own, excluded)
        if named:
            people = [named]
    return people


def _code_finding(code: CodeFound, kind: str) -> Finding | None:
    kinds = ["gp_practice", "pcn", "pharmacy", "icb"]
    if kind == CaseKind.OPH_ADMIN:
        kinds.append("optical")
    if any(ODS_PATTERNS[k].match(code.code) for k in kinds):
        return None
    words = ORG_TYPE_WORDS["gp_practice"] if code.code[:1].isalpha() else "organisation code"
    return Finding(
        "invalid_ods_code",
        f"'{code.raw}' is not a valid organisation code: a {words}, a pharmacy code "
        "(F then four letters or digits) or a PCN code (U then five digits) was expected.",
        "organisation_code",
    )


def _person_findings(people: list[Person], key: str, what: str) -> list[Finding]:
    findings = []
    for index, person in enumerate(people):
        field = f"{key}.{index}" if key == "nominees" else key
        if person.written_email:
            findings.append(
                Finding(
                    "invalid_email",
                    f"The email address '{person.written_email}' given for {what} is not valid.",
                    f"{field}.email",
                )
            )
        elif person.email is None:
            who = person.name or what
            findings.append(
                Finding(
                    "missing_field", f"Please send the email address of {who}.", f"{field}.email"
                )
            )
        if person.name is None:
            address = person.email or person.written_email
            findings.append(
                Finding(
                    "missing_field",
                    f"Please send the full name of the person with the email address {address}.",
                    f"{field}.name",
                )
            )
    return findings


def _role_words(reading: KindReading) -> str:
    roles = [admin_role(SERVICE_OF_KIND[k]) for k in reading.requested if k in SERVICE_OF_KIND]
    return " and ".join(roles) or "role"


def _is_empty_request(own: str) -> bool:
    text = GREETING.sub("", own).strip()
    return len(REQUEST_WORDS.findall(text)) < 3 or bool(TRIVIAL.match(text) and len(text) < 60)


def read_email_request(
    subject: str, text: str, sender: str, kind: str | None = None
) -> ParsedRequest:
    """The request an email body makes: its kind, organisation, nominees or main contact,
    and a finding for everything a caseworker would have to ask for. `kind`, when a person
    has said what the request is, replaces the kind the words suggest."""
    subject = (subject or "")[:MAX_SUBJECT]
    forwarded = bool(FORWARDED_SUBJECT.match(subject))
    parts = split_message((text or "")[:MAX_TEXT], forwarded=forwarded)
    reading = classify(subject, parts.own, parts.quoted)
    if kind is not None:
        reading = as_kind(reading, kind)
    kind = reading.kind
    sender_name, sender_email = _sender(sender, parts)
    labels = label_lines(parts.own)
    allow_optical = kind == CaseKind.OPH_ADMIN
    code = find_code(labels, [parts.own, subject, parts.signature], allow_optical)
    org_name = find_name(labels, [parts.own, subject, parts.signature])
    handover = read_handover(parts.own, _nominees(parts, sender_name, sender_email))
    people = handover.staying

    findings: list[Finding] = []
    fields: dict[str, Any] = {
        "organisation_code": code.code if code else None,
        "organisation_name": org_name,
        "nominees": [],
        "main_contact": None,
        "signer": None,
    }
    services = [SERVICE_OF_KIND[k].value for k in reading.requested if k in SERVICE_OF_KIND]
    if reading.gpp and kind == CaseKind.OTHER:
        services = [Service.GPP.value]
        fields["requested_services"] = services
        findings.append(
            Finding(
                "form_required",
                f"A {admin_role(Service.GPP)} is set up from the signed GP Payments and Pensions "
                "Practice User Administrator Certification form (or the User Administrator Request "
                "Form), not from an email; please complete and send the form.",
            )
        )
    unclear = _unclear_people(handover, reading)
    if services and not unclear:
        fields["nominees"] = [
            {"name": p.name, "email": p.email, "services": list(services)} for p in people
        ]
    if handover.going:
        fields["outgoing"] = [{"name": p.name, "email": p.email} for p in handover.going]
    if CaseKind.MAIN_CONTACT in reading.requested and people and not unclear:
        contact = _new_contact(handover)
        fields["main_contact"] = {"name": contact.name, "email": contact.email}
    if len(reading.requested) > 1:
        fields["also_requested"] = [str(k) for k in reading.requested[1:]]

    if unclear:
        findings.append(_unclear_finding(unclear, kind))
    elif kind in (CaseKind.PL_ADMIN, CaseKind.OPH_ADMIN, CaseKind.MAIN_CONTACT):
        findings += _admin_findings(kind, reading, people, code)
    elif code:
        finding = _code_finding(code, kind)
        if finding and code.labelled:
            findings.append(finding)
    if kind == CaseKind.OTHER and not findings and _is_empty_request(parts.own):
        findings.append(
            Finding(
                "no_request_found",
                "We could not find a request in your email. Please tell us what you need, "
                "including your organisation code and the name and email address of the person "
                "concerned.",
            )
        )
    fields["sender"] = {"name": sender_name, "email": sender_email}
    return ParsedRequest(kind=str(kind), fields=fields, findings=findings, source="email_body")


def _new_contact(handover: Handover) -> Person:
    """The person to make Main Contact: the one the text brings in, else the first read."""
    coming = [p for p, side in handover.sides if side is Side.COMING]
    return coming[0] if len(coming) == 1 else handover.staying[0]


def _unclear_people(handover: Handover, reading: KindReading) -> list[Person]:
    """The people a person must choose between, or none when the text is clear.

    Someone marked both as leaving and as coming is never guessed at; nor is the new Main
    Contact when a request for that alone leaves more than one person not marked as leaving
    ("make Tom and Lisa the main contact": there is only one).
    """
    if not reading.requested:  # no role asked for: nobody to choose
        return []
    if handover.unclear:
        return [p for p, _ in handover.sides]
    if list(reading.requested) != [str(CaseKind.MAIN_CONTACT)] or len(handover.staying) < 2:
        return []
    return [p for p, _ in handover.sides]


def _unclear_finding(people: list[Person], kind: str) -> Finding:
    names = ", ".join(p.name or p.email or p.written_email or "someone" for p in people)
    role = "the new main contact" if kind == CaseKind.MAIN_CONTACT else "given the role"
    field = "main_contact" if kind == CaseKind.MAIN_CONTACT else "nominees"
    return Finding(
        "unclear_person",
        f"Your email names {names}, and we could not be sure which of them should be {role} "
        "and who is leaving. Please reply with the full name and email address of the person "
        "to set up.",
        field,
    )


def _admin_findings(
    kind: str, reading: KindReading, people: list[Person], code: CodeFound | None
) -> list[Finding]:
    findings: list[Finding] = []
    if code is None:
        where = (
            "your organisation code or optical contractor number"
            if kind == CaseKind.OPH_ADMIN
            else "your organisation's ODS code (for a GP practice, a letter then five digits, "
            "like A81001)"
        )
        findings.append(Finding("missing_field", f"Please tell us {where}.", "organisation_code"))
    else:
        finding = _code_finding(code, kind)
        if finding:
            findings.append(finding)
    if kind == CaseKind.MAIN_CONTACT:
        if not people:
            findings.append(
                Finding(
                    "missing_field",
                    "Please send the full name and email address of the new main contact.",
                    "main_contact",
                )
            )
        else:
            findings += _person_findings(people[:1], "main_contact", "the new main contact")
        if len(reading.requested) > 1 and people:
            findings += [
                f
                for f in _person_findings(people, "nominees", "the nominee")
                if not f.field or not f.field.startswith("nominees.0.")
            ]
        return findings
    if not people:
        findings.append(
            Finding(
                "missing_field",
                f"Please send the full name and email address of the person who should have the "
                f"{_role_words(reading)} role.",
                "nominees",
            )
        )
    else:
        findings += _person_findings(people, "nominees", "the nominee")
    return findings
