"""Loading the directory from files: CSV exports and NHS ODS's epraccur.csv.

Each import reads every row, loads the good ones and reports each bad one on a line of its
own with its row number (the header is row 1, as a spreadsheet shows it). Role holders are
loaded through the directory's own operations, so an import cannot break a rule. The ODS
file is loaded with bulk statements: it holds some 14,000 practices and is refreshed monthly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql as pgsql
from sqlalchemy import JSON, Table, insert, select, update
from sqlalchemy.orm import Session

from core.catalogue import AEL_ROLES, ORG_TYPES, SIGNER_CAPACITIES, normalise_ael_role
from core.catalogue import normalise_capacity as catalogue_capacity
from core.db import is_postgres
from core.errors import PcseError
from core.timeutil import utcnow
from forms.normalise import ORG_TYPE_WORDS, clean_ods, is_valid_ods, normalise_email
from workflow.directory import (
    TAKES_NO_SIGNERS,
    get_org,
    grant_role,
    lock_organisations,
    no_signers_at,
    record_event,
)
from workflow.models import AelContact, DirectoryEvent, Organisation, RoleAssignment, Signer
from workflow.rules import ORG_TYPE_LABELS, RuleViolation

ORG_HEADER = ("code", "name", "type", "icb_code")
USER_HEADER = ("org_code", "name", "email", "role")
SIGNER_HEADER = ("org_code", "name", "email", "capacity")
AEL_HEADER = ("icb_code", "name", "email", "ael_role")

# Types whose organisations belong to an ICB, as a sentence names them.
NEEDS_ICB = {"gp_practice": "GP practice", "pcn": "PCN"}


class ImportFileError(PcseError):
    """The file as a whole cannot be read (missing, empty, wrong header)."""


class RowProblem(ValueError):
    """One row cannot be loaded; the message says why."""


@dataclass
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class ImportReport:
    """What an import did; `errors` has one entry per bad row."""

    what: str
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    # Entries not in a file imported as the whole list (--replace), now inactive.
    removed: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def rows(self) -> int:
        return self.added + self.updated + self.unchanged + self.skipped + self.failed

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.removed:
            parts.append(f"{self.removed} removed")
        parts.append(f"{self.failed} failed")
        what = self.what[:1].upper() + self.what[1:]
        return " ".join(
            [f"{what} from {self.source}: {self.rows} rows, {', '.join(parts)}.", *self.notes]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "source": self.source,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "removed": self.removed,
            "failed": [{"row": e.row, "message": e.message} for e in self.errors],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- reading files


def read_text(path: str | Path) -> str:
    """The file's text: UTF-8 (with or without a BOM), else Windows-1252 as Excel writes it."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise ImportFileError(f"The file {file} does not exist.") from exc
    except IsADirectoryError as exc:
        raise ImportFileError(f"{file} is a folder, not a file.") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def csv_rows(path: str | Path) -> Iterator[list[str]]:
    """The file's rows as the csv module reads them; one it cannot read (a cell past its
    field size limit, say) stops the import with the row's number, before anything is
    written."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(
                f"The file {path} cannot be read past line {reader.line_num}: {exc}. "
                "Nothing was imported."
            ) from exc
        yield values


def read_rows(path: str | Path, header: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, {column: stripped value}) for each non-blank row; checks the header."""
    reader = csv_rows(path)
    first = next(reader, None)
    expected = ",".join(header)
    if first is None:
        raise ImportFileError(f"The file {path} is empty; its first line must be {expected}.")
    names = [name.strip().lower() for name in first]
    missing = [name for name in header if name not in names]
    if missing:
        raise ImportFileError(
            f"The file {path} has no column {', '.join(missing)}; "
            f"its first line must be {expected}."
        )
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        padded = values + [""] * (len(names) - len(values))
        yield number, {name: padded[i].strip() for i, name in enumerate(names) if name}


def _required(row: dict[str, str], column: str, what: str) -> str:
    value = row.get(column, "")
    if not value:
        raise RowProblem(f"the {what} is missing")
    return value


def _email(row: dict[str, str]) -> str:
    raw = _required(row, "email", "email address")
    email = normalise_email(raw)
    if email is None:
        raise RowProblem(f"{raw!r} is not a valid email address")
    return email


def _name(row: dict[str, str]) -> str:
    return " ".join(_required(row, "name", "name").split())


def _sentence(message: str) -> str:
    """Row messages read as clauses after 'row N: '; drop a final full stop."""
    return message[:-1] if message.endswith(".") else message


# --------------------------------------------------------------------------- organisations


def _org_fields(row: dict[str, str]) -> dict[str, Any]:
    code = clean_ods(_required(row, "code", "organisation code"))
    org_type = row.get("type", "").strip().lower()
    if org_type not in ORG_TYPES:
        raise RowProblem(
            f"unknown organisation type {row.get('type', '')!r} "
            f"(expected one of {', '.join(ORG_TYPES)})"
        )
    if not is_valid_ods(code, org_type):
        raise RowProblem(f"{code!r} is not a valid {ORG_TYPE_WORDS[org_type]}")
    icb = clean_ods(row.get("icb_code", ""))
    if org_type == "icb" and not icb:
        icb = code
    if not icb and org_type in NEEDS_ICB:
        raise RowProblem(f"the ICB code is missing (every {NEEDS_ICB[org_type]} belongs to an ICB)")
    if icb and not is_valid_ods(icb, "icb"):
        raise RowProblem(f"{icb!r} is not a valid {ORG_TYPE_WORDS['icb']}")
    return {"code": code, "name": _name(row), "type": org_type, "icb_code": icb or None}


def _diff(org: Organisation | Signer | AelContact, values: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [getattr(org, k), v] for k, v in values.items() if getattr(org, k) != v}


def import_organisations(
    session: Session, path: str | Path, *, actor: str, now: datetime | None = None
) -> ImportReport:
    """Header code,name,type,icb_code. New codes are added, known ones updated."""
    now = now or utcnow()
    report = ImportReport("organisations", str(path))
    reason = f"Imported from {Path(path).name}"
    seen: dict[str, int] = {}
    rows = list(read_rows(path, ORG_HEADER))
    _hold_named(session, rows, "code")
    for number, row in rows:
        try:
            values = _org_fields(row)
            if values["code"] in seen:
                raise RowProblem(
                    f"{values['code']} appears again (first on row {seen[values['code']]})"
                )
        except RowProblem as problem:
            report.errors.append(RowError(number, str(problem)))
            continue
        seen[values["code"]] = number
        org = get_org(session, values["code"])
        if org is None:
            session.add(Organisation(**values, status="active", updated_at=now))
            record_event(
                session,
                actor=actor,
                action="organisation_added",
                reason=reason,
                organisation_code=values["code"],
                detail=values,
                now=now,
            )
            report.added += 1
            continue
        changed = _diff(org, values)
        if not changed:
            report.unchanged += 1
            continue
        if "type" in changed and _holds_open_roles(session, org):
            # Its roles belong to its kind's services: a PCN turned practice would keep
            # its PCN User Admin and take GPP admins besides.
            report.errors.append(RowError(number, _kind_held(org, values["type"])))
            continue
        for key, (_, new) in changed.items():
            setattr(org, key, new)
        org.updated_at = now
        record_event(
            session,
            actor=actor,
            action="organisation_updated",
            reason=reason,
            organisation_code=org.code,
            detail={"changed": changed},
            now=now,
        )
        report.updated += 1
    session.flush()
    return report


def _hold_named(session: Session, rows: list[tuple[int, dict[str, str]]], column: str) -> None:
    """Hold the organisations the file names (in `column`) before reading anything, all at
    once and in the order every holder of several takes them: an edit or a grant racing
    the import then waits and sees what it did, or is seen by it. Never a PCN's role left on
    an organisation that became a practice, nor an AEL contact added on the word of one
    the import removed."""
    codes = {clean_ods(row.get(column, "")) for _, row in rows} - {""}
    if codes:
        lock_organisations(session, Organisation.code.in_(codes))


def _holds_open_roles(session: Session, org: Organisation) -> bool:
    found = select(RoleAssignment.id).where(
        RoleAssignment.organisation_id == org.id, RoleAssignment.ended_at.is_(None)
    )
    return session.scalar(found.limit(1)) is not None


def _kind_held(org: Organisation, new_type: str) -> str:
    return (
        f"{org.code} holds open roles as {_a(ORG_TYPE_LABELS.get(org.type, org.type))}; end "
        f"them before making it {_a(ORG_TYPE_LABELS.get(new_type, new_type))}"
    )


# --------------------------------------------------------------------------- role holders


def import_users(
    session: Session, path: str | Path, *, actor: str, now: datetime | None = None
) -> ImportReport:
    """Header org_code,name,email,role: existing role holders, granted under the rules.

    A role the person already holds counts as unchanged, so the file can be loaded again.
    """
    report = ImportReport("users", str(path))
    reason = f"Imported from {Path(path).name}"
    rows = list(read_rows(path, USER_HEADER))
    _hold_named(session, rows, "org_code")
    for number, row in rows:
        try:
            org_code = _required(row, "org_code", "organisation code")
            name = _name(row)
            email = _email(row)
            role = _required(row, "role", "role")
            grant_role(
                session,
                org_code=org_code,
                email=email,
                name=name,
                role=role,
                actor=actor,
                reason=f"{reason}, row {number}",
                now=now,
            )
        except RuleViolation as refused:
            if refused.code == "already_held":
                report.unchanged += 1
            else:
                report.errors.append(RowError(number, _sentence(str(refused))))
            continue
        except RowProblem as problem:
            report.errors.append(RowError(number, str(problem)))
            continue
        report.added += 1
    return report


# --------------------------------------------------------------------------- signers, AEL


def _capacity(row: dict[str, str]) -> str:
    raw = _required(row, "capacity", "capacity")
    capacity = catalogue_capacity(raw)
    if capacity is None:
        titles = list(SIGNER_CAPACITIES.values())
        raise RowProblem(
            f"unknown capacity {raw!r} (expected {', '.join(titles[:-1])} or {titles[-1]})"
        )
    return capacity


@dataclass
class _ApproverImport:
    """What the signer and AEL imports share: add or update one entry per row, and with
    --replace remove the entries the file no longer lists; every change an event."""

    session: Session
    report: ImportReport
    actor: str
    reason: str
    now: datetime
    event: str  # the directory events' prefix: "signer" or "ael_contact"

    def upsert(
        self,
        existing: Signer | AelContact | None,
        make: Callable[[dict[str, Any]], Signer | AelContact],
        *,
        name: str,
        code: str,
        email: str,
        detail: dict[str, Any],
    ) -> None:
        values = {"name": name, "active": True}
        if existing is None:
            self.session.add(make(values))
            self._record("added", code, email, detail)
            self.report.added += 1
        elif changed := _diff(existing, values):
            for key, (_, new) in changed.items():
                setattr(existing, key, new)
            self._record("updated", code, email, detail | {"changed": changed})
            self.report.updated += 1
        else:
            self.report.unchanged += 1
        self.session.flush()

    def may_remove(self) -> bool:
        """Removing is safe only when every row was read: a failed row may name someone
        who should stay."""
        if self.report.errors:
            self.report.notes.append(
                f"Nothing was removed, because {self.report.failed} "
                "row(s) failed; correct them and import again."
            )
            return False
        return True

    def remove(self, entry: Signer | AelContact, code: str, detail: dict[str, Any]) -> None:
        entry.active = False
        self._record(
            "removed",
            code,
            entry.email,
            detail,
            reason=f"{self.reason}, which no longer lists them",
        )
        self.report.removed += 1

    def _record(
        self, what: str, code: str, email: str, detail: dict[str, Any], *, reason: str | None = None
    ) -> None:
        record_event(
            self.session,
            actor=self.actor,
            action=f"{self.event}_{what}",
            reason=reason or self.reason,
            organisation_code=code,
            person_email=email,
            detail=detail,
            now=self.now,
        )


def import_signers(
    session: Session,
    path: str | Path,
    *,
    actor: str,
    now: datetime | None = None,
    replace: bool = False,
) -> ImportReport:
    """Header org_code,name,email,capacity: the practice signers who may authorise (R6).

    With `replace`, the file is the whole list for each organisation it names: their
    signers missing from it are made inactive, so they can no longer approve.
    """
    report = ImportReport("practice signers", str(path))
    work = _ApproverImport(
        session, report, actor, f"Imported from {Path(path).name}", now or utcnow(), "signer"
    )
    listed: dict[Organisation, set[tuple[str, str]]] = {}
    rows = list(read_rows(path, SIGNER_HEADER))
    _hold_named(session, rows, "org_code")
    for number, row in rows:
        try:
            code = clean_ods(_required(row, "org_code", "organisation code"))
            name, email, capacity = _name(row), _email(row), _capacity(row)
            org = get_org(session, code)
            if org is None:
                raise RowProblem(f"there is no organisation {code} in the directory")
            if org.type in TAKES_NO_SIGNERS:
                raise RowProblem(no_signers_at(org))
        except RowProblem as problem:
            report.errors.append(RowError(number, str(problem)))
            continue
        listed.setdefault(org, set()).add((email, capacity))
        signer = session.scalars(
            select(Signer).where(
                Signer.organisation_id == org.id, Signer.email == email, Signer.capacity == capacity
            )
        ).first()
        work.upsert(
            signer,
            lambda values, org=org, email=email, capacity=capacity: Signer(  # type: ignore[misc]
                organisation=org, email=email, capacity=capacity, **values
            ),
            name=name,
            code=code,
            email=email,
            detail={"name": name, "email": email, "capacity": capacity},
        )
    if replace and work.may_remove():
        for org, keys in listed.items():
            for signer in session.scalars(
                select(Signer).where(Signer.organisation_id == org.id, Signer.active.is_(True))
            ).all():
                if (signer.email, signer.capacity) not in keys:
                    work.remove(
                        signer,
                        org.code,
                        {"name": signer.name, "email": signer.email, "capacity": signer.capacity},
                    )
    return report


def _ael_role(row: dict[str, str]) -> str:
    raw = _required(row, "ael_role", "AEL role")
    role = normalise_ael_role(raw)
    if role is None:
        raise RowProblem(
            f"unknown AEL role {raw!r} (expected {', '.join(AEL_ROLES[:-1])} or {AEL_ROLES[-1]})"
        )
    return role


def import_ael(
    session: Session,
    path: str | Path,
    *,
    actor: str,
    now: datetime | None = None,
    replace: bool = False,
) -> ImportReport:
    """Header icb_code,name,email,ael_role: NHS England's Authorised Email List.

    With `replace`, the file is the whole list for each ICB it names: that ICB's contacts
    missing from it are made inactive, so they can no longer approve.
    """
    report = ImportReport("AEL contacts", str(path))
    work = _ApproverImport(
        session, report, actor, f"Imported from {Path(path).name}", now or utcnow(), "ael_contact"
    )
    listed: dict[str, set[tuple[str, str]]] = {}
    rows = list(read_rows(path, AEL_HEADER))
    _hold_named(session, rows, "icb_code")
    for number, row in rows:
        try:
            icb = clean_ods(_required(row, "icb_code", "ICB code"))
            if not is_valid_ods(icb, "icb"):
                raise RowProblem(f"{icb!r} is not a valid {ORG_TYPE_WORDS['icb']}")
            name, email, role = _name(row), _email(row), _ael_role(row)
        except RowProblem as problem:
            report.errors.append(RowError(number, str(problem)))
            continue
        listed.setdefault(icb, set()).add((email, role))
        contact = session.scalars(
            select(AelContact).where(
                AelContact.icb_code == icb, AelContact.email == email, AelContact.ael_role == role
            )
        ).first()
        work.upsert(
            contact,
            lambda values, icb=icb, email=email, role=role: AelContact(  # type: ignore[misc]
                icb_code=icb, email=email, ael_role=role, **values
            ),
            name=name,
            code=icb,
            email=email,
            detail={"icb_code": icb, "name": name, "email": email, "ael_role": role},
        )
    if replace and work.may_remove():
        for icb, keys in listed.items():
            for contact in session.scalars(
                select(AelContact).where(AelContact.icb_code == icb, AelContact.active.is_(True))
            ).all():
                if (contact.email, contact.ael_role) not in keys:
                    work.remove(
                        contact,
                        icb,
                        {
                            "icb_code": icb,
                            "name": contact.name,
                            "email": contact.email,
                            "ael_role": contact.ael_role,
                        },
                    )
    return report


# --------------------------------------------------------------------------- NHS ODS


ODS_STATUS = {"A": "active", "C": "closed", "D": "dormant", "P": "proposed"}
GP_SETTING = 4
# Prescribing cost centres that are not GP practices carry other ODS codes (e.g. ALD200).
ANY_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
MAX_ICB_CODE = 8  # organisations.icb_code
ODS_FIELDS = 27
# The columns an import compares and stores.
ODS_COLUMNS = ("name", "type", "icb_code", "status", "prescribing_setting")
# Codes per UPDATE when marking organisations refreshed (well under SQLite's bound limit).
REFRESH_BATCH = 5000


def _ods_fields(values: list[str]) -> dict[str, Any]:
    """One epraccur row as organisation columns, or RowProblem."""
    if len(values) < 26:
        raise RowProblem(f"it has {len(values)} fields where epraccur.csv has {ODS_FIELDS}")
    setting_raw = values[25].strip()
    if not setting_raw.isdigit():
        raise RowProblem(f"the prescribing setting {setting_raw!r} is not a number")
    setting = int(setting_raw)
    code = clean_ods(values[0])
    pattern_ok = (
        is_valid_ods(code, "gp_practice")
        if setting == GP_SETTING
        else bool(ANY_ODS_CODE.match(code))
    )
    if not pattern_ok:
        raise RowProblem(f"{code!r} is not a valid {ORG_TYPE_WORDS['gp_practice']}")
    status = ODS_STATUS.get(values[12].strip().upper())
    if status is None:
        raise RowProblem(f"unknown status code {values[12]!r} (expected A, C, D or P)")
    name = " ".join(values[1].split())
    if not name:
        raise RowProblem("the name is missing")
    icb = clean_ods(values[3]) or None
    if setting == GP_SETTING and not (icb and is_valid_ods(icb, "icb")):
        raise RowProblem(f"{values[3]!r} is not a valid {ORG_TYPE_WORDS['icb']}")
    if icb and (len(icb) > MAX_ICB_CODE or not ANY_ODS_CODE.match(icb)):
        raise RowProblem(f"{values[3]!r} is not an ICB or commissioner code")
    return {
        "code": code,
        "name": name[:200],
        "type": "gp_practice",
        "icb_code": icb,
        "status": status,
        "prescribing_setting": setting,
    }


def _a(label: str) -> str:
    return f"an {label}" if label[:1] in "AEIOU" else f"a {label}"


def _not_a_practice(code: str, kind: str) -> str:
    return (
        f"{code} is in the directory as {_a(ORG_TYPE_LABELS.get(kind, kind))}, not a GP practice; "
        "an NHS ODS file does not change that (edit it with `pcse directory import-orgs`)"
    )


def _read_ods(
    path: str | Path, include_non_gp: bool, report: ImportReport
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The file's practices by code, and the row each was on; bad rows go to the report,
    skipped ones are counted."""
    found: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    for number, values in enumerate(csv_rows(path), start=1):
        if not any(v.strip() for v in values):
            continue
        if len(values) >= 26 and values[25].strip() != str(GP_SETTING) and not include_non_gp:
            report.skipped += 1
            continue
        try:
            fields = _ods_fields(values)
            if fields["code"] in first_seen:
                raise RowProblem(
                    f"{fields['code']} appears again (first on row {first_seen[fields['code']]})"
                )
        except RowProblem as problem:
            report.errors.append(RowError(number, str(problem)))
            continue
        first_seen[fields["code"]] = number
        found[fields["code"]] = fields
    if not found and not report.failed and not report.skipped:
        raise ImportFileError(f"The file {path} is empty; it should be NHS ODS's epraccur.csv.")
    return found, first_seen


def import_ods(
    session: Session,
    path: str | Path,
    *,
    actor: str,
    include_non_gp: bool = False,
    now: datetime | None = None,
) -> ImportReport:
    """Load or refresh GP practices from NHS ODS's epraccur.csv, in bulk.

    Practices new to the directory are added, changed ones updated (a closed practice stays,
    marked closed); cost centres that are not GP practices are skipped unless asked for.
    Non-GP cost centres, when included, are stored as type gp_practice with their own
    prescribing setting, which tells them apart.
    """
    now = now or utcnow()
    report = ImportReport("NHS ODS practices", str(path))
    found, row_of = _read_ods(path, include_non_gp, report)
    existing = {
        row.code: row
        for row in session.execute(
            select(
                Organisation.id, Organisation.code, *(getattr(Organisation, c) for c in ODS_COLUMNS)
            )
        )
    }
    reason = f"NHS ODS import from {Path(path).name}"
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for code, fields in found.items():
        current = existing.get(code)
        if current is None:
            inserts.append(fields | {"updated_at": now, "ods_refreshed_at": now})
            events.append(_ods_event(actor, "organisation_added", code, fields, reason, now))
            continue
        if current.type != "gp_practice":
            # The file lists practices and cost centres: it never turns a PCN or an ICB
            # the directory holds (with that type's roles) into one.
            report.errors.append(RowError(row_of[code], _not_a_practice(code, current.type)))
            continue
        changed = {
            c: [getattr(current, c), fields[c]]
            for c in ODS_COLUMNS
            if getattr(current, c) != fields[c]
        }
        if not changed:
            report.unchanged += 1
            continue
        updates.append({"id": current.id, **{c: fields[c] for c in changed}, "updated_at": now})
        events.append(
            _ods_event(actor, "organisation_updated", code, {"changed": changed}, reason, now)
        )
    report.added, report.updated = len(inserts), len(updates)
    _bulk_insert(session, Organisation, inserts)
    _bulk_update(session, updates)
    practices = [c for c in found if c in existing and existing[c].type == "gp_practice"]
    _mark_refreshed(session, practices, now)
    _bulk_insert(session, DirectoryEvent, events)
    record_event(
        session,
        actor=actor,
        action="ods_import",
        reason=reason,
        detail=report.as_dict() | {"failed": report.failed},
        now=now,
    )
    session.flush()
    return report


def _bulk_insert(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of one shape: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    if is_postgres(session):
        _copy_rows(session, table, rows)
    else:
        session.execute(insert(table), rows)


def _copy_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY … FROM STDIN on the session's own connection, so it shares the transaction."""
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table.name), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    )
    session.flush()
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in json_columns else row[c] for c in columns])


def _bulk_update(session: Session, updates: list[dict[str, Any]]) -> None:
    """UPDATE by primary key, grouped by the set of columns that changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in updates:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for rows in groups.values():
        session.execute(update(Organisation), rows)


def _mark_refreshed(session: Session, codes: list[str], now: datetime) -> None:
    """Note that this import listed these organisations, changed or not (the date
    `pcse directory show` gives as the last ODS refresh)."""
    for start in range(0, len(codes), REFRESH_BATCH):
        batch = codes[start : start + REFRESH_BATCH]
        session.execute(
            update(Organisation)
            .where(Organisation.code.in_(batch))
            .values(ods_refreshed_at=now)
            .execution_options(synchronize_session=False)
        )


def _ods_event(
    actor: str, action: str, code: str, detail: dict[str, Any], reason: str, now: datetime
) -> dict[str, Any]:
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "organisation_code": code,
        "person_email": None,
        "detail": detail,
        "reason": reason,
    }
