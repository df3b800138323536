"""Which values of a case's reading a caseworker may correct, and each value checked the way
the readers check it (forms.normalise). No session: workflow.corrections uses it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.catalogue import CATALOGUE, SIGNER_CAPACITIES, Service
from core.errors import PcseError
from core.states import CaseKind
from forms.normalise import (
    ODS_PATTERNS,
    ORG_TYPE_WORDS,
    clean_ods,
    email_candidate,
    name_problem,
    normalise_capacity,
    normalise_email,
    parse_date,
    tidy_name,
)

# The paths of the values a reading holds (the form definitions' dotted keys).
PATHS = re.compile(
    r"^(?:organisation_code|organisation_name|icb_code|main_contact\.(?:name|email)|"
    r"nominees\.(?P<index>\d{1,2})\.(?:name|email|services)|"
    r"signer\.(?:name|email|capacity|date|declaration))$"
)
LABELS = {
    "organisation_code": "Organisation code",
    "organisation_name": "Organisation name",
    "icb_code": "ICB code",
    "main_contact.name": "Main contact's name",
    "main_contact.email": "Main contact's email address",
    "signer.name": "Signer's name",
    "signer.email": "Signer's email address",
    "signer.capacity": "Signer's capacity",
    "signer.date": "Date signed",
    "signer.declaration": "Declaration ticked",
}
CHOICES = (
    "organisation_code, organisation_name, icb_code, main_contact.name|email, "
    "nominees.N.name|email|services, signer.name|email|capacity|date|declaration"
)
YES = frozenset({"yes", "y", "true", "ticked", "x", "signed"})
NO = frozenset({"no", "n", "false", "not ticked", "unticked", "blank"})
LEAF_LABELS = {"name": "name", "email": "email address", "services": "services"}
# Organisation types whose codes a request of each kind may name.
ORG_KINDS = ("gp_practice", "pcn", "pharmacy", "icb")
NAME_LIMIT = 200  # an organisation's name
# Services a nominee can be put forward for (the Main Contact is not an admin role).
NOMINEE_SERVICES = tuple(s for s in Service if s is not Service.MAIN_CONTACT)


class CorrectionRefused(PcseError):
    """A correction the case, the field or the value does not allow; nothing was changed."""


@dataclass(frozen=True)
class Correctable:
    path: str
    label: str
    current: Any


def label_for(path: str) -> str:
    if path in LABELS:
        return LABELS[path]
    match = PATHS.match(path)
    if match and match.group("index") is not None:
        leaf = path.rsplit(".", 1)[1]
        return f"Nominee {int(match.group('index')) + 1}'s {LEAF_LABELS[leaf]}"
    return path


def check_path(fields: Mapping[str, Any], path: str) -> str:
    """The path, when it names a value of the reading; a refusal otherwise."""
    path = path.strip()
    match = PATHS.match(path)
    if match is None:
        raise CorrectionRefused(
            f"'{path}' is not a value that can be corrected; use one of {CHOICES}."
        )
    index = match.group("index")
    nominees = fields.get("nominees") or []
    if index is not None and int(index) > len(nominees):
        raise CorrectionRefused(
            f"The request has {len(nominees)} nominee(s); correct nominees.0 to "
            f"nominees.{len(nominees)} (the next one adds a nominee)."
        )
    return path


def checked_value(kind: str, path: str, raw: str) -> Any:
    """The value normalised as the readers normalise it, or a refusal saying why not."""
    text = " ".join((raw or "").split())
    leaf = path.rsplit(".", 1)[-1]
    if not text:
        raise CorrectionRefused(f"Give the corrected {label_for(path).lower()}.")
    if path == "organisation_code":
        return _ods(kind, text)
    if path == "icb_code":
        code = clean_ods(text)
        if not ODS_PATTERNS["icb"].match(code):
            raise CorrectionRefused(f"'{text}' is not a valid {ORG_TYPE_WORDS['icb']}.")
        return code
    if leaf == "declaration":
        answer = text.casefold()
        if answer not in YES | NO:
            raise CorrectionRefused(f"Say yes or no for the declaration, not '{text}'.")
        return answer in YES
    if leaf == "email":
        address = normalise_email(email_candidate(text))
        if address is None:
            raise CorrectionRefused(f"'{text}' is not a valid email address.")
        return address
    if leaf == "capacity":
        capacity = normalise_capacity(text)
        if capacity not in SIGNER_CAPACITIES:
            allowed = ", ".join(SIGNER_CAPACITIES.values())
            raise CorrectionRefused(f"'{text}' is not a capacity a form is signed in ({allowed}).")
        return capacity
    if leaf == "date":
        when = parse_date(text)
        if when is None:
            raise CorrectionRefused(f"'{text}' is not a date that can be read.")
        return when.isoformat()
    if leaf == "services":
        return _services(text)
    if path == "organisation_name":
        return _organisation_name(text)
    return _name(path, text)


def _ods(kind: str, text: str) -> str:
    code = clean_ods(text)
    kinds = (*ORG_KINDS, "optical") if kind == CaseKind.OPH_ADMIN else ORG_KINDS
    if not any(ODS_PATTERNS[k].match(code) for k in kinds):
        words = "; ".join(ORG_TYPE_WORDS[k] for k in kinds)
        raise CorrectionRefused(f"'{text}' is not a valid organisation code ({words}).")
    return code


def _name(path: str, text: str) -> str:
    name = tidy_name(text)
    why = name_problem(name)
    if why:
        raise CorrectionRefused(f"'{text}' is not a {label_for(path).lower()} ({why}).")
    return name


def _organisation_name(text: str) -> str:
    name = tidy_name(text)
    if len(name) > NAME_LIMIT or "@" in name or not re.search(r"[^\W\d_]", name):
        raise CorrectionRefused(f"'{text}' is not an organisation name.")
    return name


def _services(text: str) -> list[str]:
    """ "pl, gpp" or the services' titles ("Performers Lists") to the catalogue's codes."""
    words = text.lower()
    titles = [(t.lower(), s.value) for s in NOMINEE_SERVICES for t in _titles(s)]
    for title, code in sorted(titles, key=lambda pair: -len(pair[0])):
        words = words.replace(title, code)  # "GP Payments and Pensions" holds an "and"
    codes = {s.value for s in NOMINEE_SERVICES}
    found: list[str] = []
    for part in re.split(r"\s*(?:,|/|;|&|\band\b)\s*", words):
        if not part:
            continue
        if part not in codes:
            raise CorrectionRefused(f"'{part}' is not a service; use {', '.join(sorted(codes))}.")
        if part not in found:
            found.append(part)
    return found


def _titles(service: Service) -> tuple[str, str]:
    return CATALOGUE[service].title, CATALOGUE[service].admin_role


def current_value(fields: Mapping[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def with_value(fields: Mapping[str, Any], path: str, value: Any, kind: str) -> dict[str, Any]:
    """A copy of the fields with the value at `path` set (a new nominee or person as needed)."""
    updated = {k: v for k, v in fields.items()}
    head, _, rest = path.partition(".")
    if not rest:
        updated[head] = value
        return updated
    if head == "nominees":
        nominees = [dict(n) for n in updated.get("nominees") or []]
        index, _, leaf = rest.partition(".")
        if int(index) == len(nominees):
            nominees.append({"name": None, "email": None, "services": _kind_services(kind)})
        nominees[int(index)][leaf] = value
        updated["nominees"] = nominees
        return updated
    person = dict(updated.get(head) or {})
    person[rest] = value
    updated[head] = person
    return updated


def _kind_services(kind: str) -> list[str]:
    return {CaseKind.PL_ADMIN: ["pl"], CaseKind.OPH_ADMIN: ["oph"]}.get(CaseKind(kind), [])


def correctable(kind: str, fields: Mapping[str, Any]) -> list[Correctable]:
    """The values of this case's reading a caseworker may correct, with what they hold now."""
    paths = ["organisation_code", "organisation_name"]
    if kind in (CaseKind.MAIN_CONTACT, CaseKind.USER_ADMIN_FORM) or fields.get("main_contact"):
        paths += ["main_contact.name", "main_contact.email"]
    if kind != CaseKind.MAIN_CONTACT:
        count = len(fields.get("nominees") or [])
        for index in range(count + 1):  # the one after the last adds a nominee
            paths += [f"nominees.{index}.name", f"nominees.{index}.email"]
            if kind in (CaseKind.USER_ADMIN_FORM, CaseKind.PCN_ADMIN_FORM):
                paths.append(f"nominees.{index}.services")
    if fields.get("signer") or kind in (
        CaseKind.GPP_ADMIN_FORM,
        CaseKind.USER_ADMIN_FORM,
    ):
        paths += ["signer.name", "signer.email", "signer.capacity", "signer.date"]
        paths.append("signer.declaration")
    if kind == CaseKind.PCN_ADMIN_FORM or fields.get("icb_code"):
        paths.append("icb_code")
    count = len(fields.get("nominees") or [])
    return [
        Correctable(
            p,
            label_for(p) + (" (adds a nominee)" if p.startswith(f"nominees.{count}.") else ""),
            current_value(fields, p),
        )
        for p in paths
    ]
