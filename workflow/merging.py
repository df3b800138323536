"""Folding a text reply into a case's fields (no session: workflow.case_replies uses it)."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from core.states import CaseKind
from forms.email_people import EMAIL
from forms.model import Finding, ParsedRequest
from forms.normalise import clean_ods, normalise_email
from workflow.models import Case

PDF_KINDS = frozenset({CaseKind.GPP_ADMIN_FORM, CaseKind.USER_ADMIN_FORM, CaseKind.PCN_ADMIN_FORM})


def merge_fields(
    kind: str,
    old: Mapping[str, Any],
    old_findings: list[Finding],
    new: ParsedRequest,
    said: str,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[Finding]]:
    """The case's fields with what a text reply supplied, and the findings still open.

    Values the reply gives replace missing ones; a nominee is matched by address or name.
    A bare address in a reply fills the one address still missing. Findings about a field
    that is now filled are dropped; findings about a whole PDF form (not signed, scanned)
    stay, since only a new form can settle them.
    """
    fields = deepcopy(dict(old))
    for key in ("organisation_code", "organisation_name"):
        if new.fields.get(key):
            fields[key] = new.fields[key]
    nominees = [dict(n) for n in fields.get("nominees") or []]
    for incoming in new.fields.get("nominees") or []:
        match = _match_person(nominees, incoming)
        if match is None:
            nominees.append(dict(incoming))
        else:
            for key, value in incoming.items():
                if value and not match.get(key):
                    match[key] = value
    fields["nominees"] = nominees
    if new.fields.get("main_contact"):
        fields["main_contact"] = _merged_person(
            fields.get("main_contact"), new.fields["main_contact"]
        )
    _fill_bare_address(kind, fields, said, exclude)
    still = [
        f
        for f in old_findings
        if (f.field is None and kind in PDF_KINDS) or (f.field and not _filled(fields, f.field))
    ]
    return fields, still


def _match_person(
    people: list[dict[str, Any]], incoming: Mapping[str, Any]
) -> dict[str, Any] | None:
    email = normalise_email(incoming.get("email") or "")
    name = " ".join(str(incoming.get("name") or "").casefold().split())
    for person in people:
        if email and normalise_email(person.get("email") or "") == email:
            return person
        if name and " ".join(str(person.get("name") or "").casefold().split()) == name:
            return person
    if len(people) == 1 and not people[0].get("email"):
        return people[0]
    return None


def _merged_person(old: Any, new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(old or {})
    for key, value in new.items():
        if value:
            merged[key] = value
    return merged


def _fill_bare_address(
    kind: str, fields: dict[str, Any], said: str, exclude: set[str] | frozenset[str]
) -> None:
    """ "Her address is jane@nhs.net": one address in the reply fills the one that is missing."""
    found = {a.lower().rstrip(".") for a in EMAIL.findall(said or "")}
    found = {a for a in found if normalise_email(a) and a not in exclude}
    if len(found) != 1:
        return
    address = found.pop()
    people = [n for n in fields.get("nominees") or [] if not n.get("email")]
    contact = fields.get("main_contact")
    if kind == CaseKind.MAIN_CONTACT and isinstance(contact, dict) and not contact.get("email"):
        people = [contact]
    if len(people) == 1:
        people[0]["email"] = address


def _filled(fields: Mapping[str, Any], path: str) -> bool:
    """Is the value at a dotted path ("nominees.0.email") present and, for addresses, valid?"""
    value: Any = fields
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return False
    if path.endswith("email"):
        return normalise_email(str(value or "")) is not None
    return bool(value)


def replace_read(case: Case, fields: dict[str, Any], findings: list[Finding]) -> None:
    """The case's fields and findings after a reply, and its organisation code with them."""
    case.fields = fields
    case.findings = [f.as_dict() for f in findings]
    code = clean_ods(fields.get("organisation_code") or "") or None
    if code and code != case.organisation_code:
        case.organisation_code = code


def findings_of(case: Case) -> list[Finding]:
    found = []
    for item in case.findings or []:
        found.append(
            Finding(item.get("code", "unknown"), item.get("message", ""), item.get("field"))
        )
    return found
