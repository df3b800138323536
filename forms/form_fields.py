"""Turn the raw values read from a form into checked, normalised fields and findings.

The same rules apply whether the values came from AcroForm fields or from page text:
every field is normalised by its type, required fields must be present, a missing part is
reported once (not field by field), gaps in the authorisation part mean the form is not
signed, and the values are assembled into the contract's keys (organisation_code,
organisation_name, nominees, main_contact, signer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.visible import visible
from forms.definitions import FieldDef, FormDefinition, PartDef, SectionDef
from forms.model import Finding, ParsedRequest
from forms.normalise import (
    ORG_TYPE_WORDS,
    clean_ods,
    email_candidate,
    is_ticked,
    is_valid_ods,
    name_problem,
    normalise_capacity,
    normalise_email,
    parse_date,
    tidy_name,
    tidy_text,
)

CONTRACT_KEYS = ("organisation_code", "organisation_name", "nominees", "main_contact", "signer")


@dataclass
class Checked:
    """Normalised values by field key, and what was wrong."""

    values: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _is_blank(raw: Any) -> bool:
    if isinstance(raw, bool):
        return not raw
    return not tidy_text(raw if isinstance(raw, str) else None)


def _ods_words(kinds: tuple[str, ...]) -> str:
    if len(kinds) == 1:
        return ORG_TYPE_WORDS[kinds[0]]
    return "organisation code (an ODS code such as A81001 or FW844, or a contractor number)"


def _check_value(f: FieldDef, part: PartDef, raw: Any, out: Checked) -> None:
    """Normalise one present value; add a finding when it is not valid."""
    text = tidy_text(raw) if isinstance(raw, str) else ""
    where = part.title
    if f.type == "checkbox":
        out.values[f.key] = is_ticked(raw)
    elif f.type == "name":
        name = tidy_name(text)
        out.values[f.key] = name
        why = name_problem(name)
        if why:
            out.findings.append(
                Finding("invalid_name", f"{where}: {f.noun} is not a name ({why}).", f.key)
            )
    elif f.type == "email":
        # Read before tidy_text closes up runs of spaces: one may hide the rest of the box.
        email = normalise_email(email_candidate(visible(raw) if isinstance(raw, str) else ""))
        out.values[f.key] = email
        if email is None:
            out.findings.append(
                Finding("invalid_email", f"{where}: {f.noun} is not valid ('{text}').", f.key)
            )
    elif f.type == "ods_code":
        code = clean_ods(text)
        out.values[f.key] = code
        if not any(is_valid_ods(code, kind) for kind in f.org_kinds):
            out.findings.append(
                Finding(
                    "invalid_ods_code",
                    f"{where}: '{text}' is not a valid {_ods_words(f.org_kinds)}.",
                    f.key,
                )
            )
    elif f.type == "date":
        parsed = parse_date(text)
        out.values[f.key] = parsed.isoformat() if parsed else None
        if parsed is None:
            out.findings.append(
                Finding(
                    "invalid_date",
                    f"{where}: {f.noun} '{text}' is not a date we can read; "
                    "please write it like 20/11/2026.",
                    f.key,
                )
            )
    elif f.type == "capacity":
        capacity = normalise_capacity(text)
        out.values[f.key] = capacity
        if capacity is None:
            out.findings.append(
                Finding(
                    "invalid_capacity",
                    f"{where}: '{text}' cannot authorise this form; it must be signed by a GP "
                    "Partner, the Caldicott Guardian, a Company Director or the ICB.",
                    f.key,
                )
            )
    else:
        out.values[f.key] = text


def _missing(f: FieldDef, part: PartDef) -> Finding:
    if f.type == "checkbox" and f.key.endswith("declaration"):
        return Finding(
            "declaration_unticked", f"{part.title}: the declaration box is not ticked.", f.key
        )
    if part.signer:
        return Finding("not_signed", f"{part.title} is not signed: {f.noun} is missing.", f.key)
    return Finding("missing_field", f"{part.title}: {f.noun} is missing.", f.key)


def _check_section(section: SectionDef, part: PartDef, raw: dict[str, Any], out: Checked) -> bool:
    """Check one section's fields; False when an optional section was left blank."""
    if section.optional and all(_is_blank(raw.get(f.key)) for f in section.fields):
        return False
    for f in section.fields:
        value = raw.get(f.key)
        if _is_blank(value):
            out.values[f.key] = False if f.type == "checkbox" else None
            if f.required:
                out.findings.append(_missing(f, part))
        else:
            _check_value(f, part, value, out)
    if section.at_least_one and not any(out.values.get(k) for k in section.at_least_one):
        group = section.at_least_one[0].rsplit(".", 1)[0]
        out.findings.append(
            Finding(
                "missing_field", f"{part.title}: please tick {section.at_least_one_noun}.", group
            )
        )
    return True


def _part_missing(definition: FormDefinition, part: PartDef) -> Finding:
    heading = next(s.heading for s in definition.sections if s.part == part.id)
    subject = heading.split("–", 1)[-1].strip()
    return Finding(
        "part_missing",
        f"{part.title} of the form ({subject}) is missing. Please send the whole form, "
        "with every part completed.",
        None,
    )


def _set_path(target: dict[str, Any], key: str, value: Any) -> None:
    node = target
    *parents, leaf = key.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value


def _assemble(definition: FormDefinition, values: dict[str, Any], signed: bool) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        _set_path(tree, key, value)
    nominees = []
    for index in sorted(tree.get("nominees", {}), key=int):
        entry = tree["nominees"][index]
        ticked = [s for s, on in entry.get("services", {}).items() if on]
        services = list(dict.fromkeys([*definition.services, *ticked]))
        nominees.append(
            {"name": entry.get("name"), "email": entry.get("email"), "services": services}
        )
    main_contact = tree.get("main_contact")
    signer = None
    if signed:
        found = tree.get("signer", {})
        signer = {
            "name": found.get("name"),
            "email": found.get("email"),
            "capacity": found.get("capacity", definition.signer_capacity),
            "date": found.get("date"),
            "declaration": bool(found.get("declaration")),
        }
    fields: dict[str, Any] = {
        "organisation_code": tree.get("organisation_code"),
        "organisation_name": tree.get("organisation_name"),
        "nominees": nominees,
        "main_contact": (
            {"name": main_contact.get("name"), "email": main_contact.get("email")}
            if main_contact
            else None
        ),
        "signer": signer,
    }
    # Extra keys a form may carry beside the contract's (e.g. the PCN form's icb_code).
    for key, value in tree.items():
        if key not in fields and key not in ("nominees", "main_contact", "signer"):
            fields[key] = value
    return fields


def build_request(
    definition: FormDefinition, raw: dict[str, Any], present_parts: set[str], source: str
) -> ParsedRequest:
    """The parsed request for one form, from the raw values of the parts that were found."""
    out = Checked()
    signed = False
    for part in definition.parts:
        if part.id not in present_parts:
            if part.required:
                out.findings.append(_part_missing(definition, part))
            continue
        sections = [s for s in definition.sections if s.part == part.id]
        part_fields = [f for s in sections for f in s.fields]
        if part.signer and all(_is_blank(raw.get(f.key)) for f in part_fields):
            out.findings.append(
                Finding(
                    "not_signed",
                    f"{part.title} is not signed: it has not been filled in.",
                    "signer",
                )
            )
            continue
        used = [_check_section(s, part, raw, out) for s in sections]
        signed = signed or (part.signer and any(used))
    fields = _assemble(definition, out.values, signed)
    fields["raw"] = {key: value for key, value in raw.items() if value not in (None, "")}
    return ParsedRequest(
        kind=definition.kind,
        fields=fields,
        findings=out.findings,
        source=source,
        form_version=definition.version,
    )
