"""Form definitions, one per form version, loaded from the TOML files in forms/definitions/.

A definition lists the parts and sections of a form and, for each field, its key in the
parsed request, the label printed on the page, its AcroForm field name, its type and whether
it is required. The blank PDFs are drawn from these files and the readers use them to find
and check each value, so a new version of a form is a new file, not new code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFINITIONS_DIR = Path(__file__).with_name("definitions")

FIELD_TYPES = ("text", "name", "email", "ods_code", "date", "checkbox", "capacity")


class DefinitionError(ValueError):
    """A definition file that cannot be used; raised when the definitions are loaded."""


@dataclass(frozen=True)
class FieldDef:
    key: str  # where the value goes in ParsedRequest.fields, dotted ("nominees.0.email")
    label: str  # the words printed beside the field
    name: str  # the AcroForm field name
    type: str
    required: bool
    part: str
    section: str
    noun: str  # how a sentence names it: "the practice code"
    org_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class SectionDef:
    id: str
    part: str
    page: int
    heading: str
    text: str
    optional: bool  # the whole section may be left blank
    at_least_one: tuple[str, ...]  # keys of checkboxes of which one must be ticked
    at_least_one_noun: str
    fields: tuple[FieldDef, ...]


@dataclass(frozen=True)
class PartDef:
    id: str
    title: str
    required: bool
    signer: bool  # the authorisation part: gaps in it mean the form is not signed


@dataclass(frozen=True)
class FormDefinition:
    version: str  # the version mark printed on every page and stored in the document
    kind: str
    blank: str  # file name of the blank form under forms/blank/
    title: str
    intro: str
    services: tuple[str, ...]
    signer_capacity: str | None
    parts: tuple[PartDef, ...]
    sections: tuple[SectionDef, ...]

    @property
    def fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for s in self.sections for f in s.fields)

    @property
    def pages(self) -> int:
        return max(s.page for s in self.sections)

    def part(self, part_id: str) -> PartDef:
        return next(p for p in self.parts if p.id == part_id)

    def field(self, key: str) -> FieldDef:
        return next(f for f in self.fields if f.key == key)


def _field(raw: dict, section: dict, where: str) -> FieldDef:
    try:
        field = FieldDef(
            key=raw["key"],
            label=raw["label"],
            name=raw["name"],
            type=raw["type"],
            required=bool(raw.get("required", False)),
            part=section["part"],
            section=section["id"],
            noun=raw.get("noun") or "the " + raw["label"].lower(),
            org_kinds=tuple(raw.get("org_kinds", ())),
        )
    except KeyError as exc:
        raise DefinitionError(f"{where}: a field lacks {exc.args[0]!r}") from exc
    if field.type not in FIELD_TYPES:
        raise DefinitionError(f"{where}: field {field.key!r} has unknown type {field.type!r}")
    if field.type == "ods_code" and not field.org_kinds:
        raise DefinitionError(f"{where}: ODS field {field.key!r} needs org_kinds")
    return field


def _section(raw: dict, where: str) -> SectionDef:
    fields = tuple(_field(f, raw, where) for f in raw.get("fields", ()))
    return SectionDef(
        id=raw["id"],
        part=raw["part"],
        page=int(raw["page"]),
        heading=raw["heading"],
        text=raw.get("text", ""),
        optional=bool(raw.get("optional", False)),
        at_least_one=tuple(raw.get("at_least_one", ())),
        at_least_one_noun=raw.get("at_least_one_noun", "one of the boxes"),
        fields=fields,
    )


def parse_definition(data: dict, where: str = "definition") -> FormDefinition:
    """Build and check one definition from its TOML data."""
    try:
        parts = tuple(
            PartDef(
                pid,
                p.get("title", f"Part {pid}"),
                bool(p.get("required", True)),
                bool(p.get("signer", False)),
            )
            for pid, p in data["parts"].items()
        )
        sections = tuple(_section(s, where) for s in data["sections"])
        definition = FormDefinition(
            version=data["version"],
            kind=data["kind"],
            blank=data["blank"],
            title=data["title"],
            intro=data.get("intro", ""),
            services=tuple(data.get("services", ())),
            signer_capacity=data.get("signer_capacity") or None,
            parts=parts,
            sections=sections,
        )
    except KeyError as exc:
        raise DefinitionError(f"{where}: missing {exc.args[0]!r}") from exc
    _check(definition, where)
    return definition


def _check(definition: FormDefinition, where: str) -> None:
    part_ids = {p.id for p in definition.parts}
    keys = [f.key for f in definition.fields]
    names = [f.name for f in definition.fields]
    if len(set(keys)) != len(keys) or len(set(names)) != len(names):
        raise DefinitionError(f"{where}: field keys and AcroForm names must be unique")
    for section in definition.sections:
        if section.part not in part_ids:
            raise DefinitionError(f"{where}: section {section.id!r} names unknown part")
        unknown = set(section.at_least_one) - set(keys)
        if unknown:
            raise DefinitionError(f"{where}: at_least_one names unknown keys {sorted(unknown)}")


@cache
def definitions() -> tuple[FormDefinition, ...]:
    """Every known form version, in file-name order."""
    found = []
    for path in sorted(DEFINITIONS_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            found.append(parse_definition(tomllib.load(handle), path.name))
    versions = [d.version for d in found]
    if len(set(versions)) != len(versions):
        raise DefinitionError("two definition files carry the same version mark")
    return tuple(found)


def by_version(mark: str) -> FormDefinition | None:
    wanted = " ".join(mark.split()).casefold()
    for definition in definitions():
        if definition.version.casefold() == wanted:
            return definition
    return None


def version_marks() -> list[str]:
    return [d.version for d in definitions()]
