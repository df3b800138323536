"""Subject access and erasure for one person, named by their email address.

`export_person` gathers every case, message and role that names them, showing only what
is theirs: other people's addresses and names in the same text are masked.

`erase_person` replaces the address, in every text column of every table, with a marker
of its own (`erased-…@erased.invalid`), and the person's name with `[erased]` in the rows
that named them; it removes the original emails of every case that named them, of every
message from them and of every message whose ledger row named them (raw bytes cannot be
edited without breaking them). What stays is the audit skeleton with the marker
in place of the person: that a person was granted or ended a role, asked for or approved
a change, by whom and when (R8; the NHS Records Management Code asks for the audit trail
of who had access to a system to be kept). Staff accounts are not erased here, and a
person who still holds roles is refused: ending the roles first hands the change on to
PCSE Online through the change feed while the address is still there to key it.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, String, Table, Text, cast, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.db import Base
from core.errors import PcseError
from intake.mailparse import parse_mail
from intake.models import InboundMessage, RawBlob
from intake.rawstore import RawMissing, RawStore
from notifications.models import OutboxMessage
from workflow import directory
from workflow.cases import hold_cases_by_id, record
from workflow.models import (
    AelContact,
    ApprovalRequest,
    Case,
    CaseEvent,
    DirectoryEvent,
    Person,
    RoleAssignment,
    RoleChange,
    Signer,
)
from workflow.retention import remove_raw
from workflow.rules import require_email

ERASED_NAME = "[erased]"
OTHER_ADDRESS = "[another person's address]"
OTHER_PERSON = "[another person]"
_ADDRESS = re.compile(r"(?<![\w.+'’-])[\w.+'’-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}")
# Names shorter than this are not searched for in free text: too likely to hit other words.
MIN_NAME = 4


class ErasureRefused(PcseError):
    pass


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --------------------------------------------------------------------------- export


def _people_in(value: Any) -> list[dict[str, Any]]:
    """Every {name, email} mapping in a case's fields, at any depth."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if isinstance(value.get("email"), str):
            found.append(value)
        for item in value.values():
            found.extend(_people_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_people_in(item))
    return found


class _Masker:
    """Masks other people in text that also names the person asking."""

    def __init__(self, email: str, own_names: Iterable[str], other_names: Iterable[str]) -> None:
        self.email = email
        own = {n.casefold() for n in own_names if n}
        names = sorted(
            {n for n in other_names if n and len(n) >= MIN_NAME and n.casefold() not in own},
            key=len,
            reverse=True,
        )
        self.names = (
            re.compile("|".join(re.escape(n) for n in names), re.IGNORECASE) if names else None
        )

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        masked = _ADDRESS.sub(
            lambda m: m.group(0) if m.group(0).lower() == self.email else OTHER_ADDRESS, text
        )
        return self.names.sub(OTHER_PERSON, masked) if self.names else masked


def _cases_naming(session: Session, email: str) -> list[Case]:
    # Escaped: an address may hold _ or %, which LIKE would read as wildcards.
    by_fields = select(Case.id).where(
        func.lower(cast(Case.fields, Text)).contains(email, autoescape=True)
    )
    by_approval = select(ApprovalRequest.case_id).where(ApprovalRequest.approver_email == email)
    by_event = select(CaseEvent.case_id).where(CaseEvent.actor == email)
    by_mail = select(InboundMessage.case_id).where(InboundMessage.from_address == email)
    by_sent = select(OutboxMessage.case_id).where(OutboxMessage.to_address == email)
    query = (
        select(Case)
        .where(
            or_(
                Case.requester == email,
                Case.id.in_(by_fields),
                Case.id.in_(by_approval),
                Case.id.in_(by_event),
                Case.id.in_(by_mail),
                Case.id.in_(by_sent),
            )
        )
        .order_by(Case.id)
    )
    return list(session.scalars(query))


def _case_export(session: Session, case: Case, email: str, own: set[str]) -> dict[str, Any]:
    entries = _people_in(case.fields or {})
    mine = [e for e in entries if str(e.get("email", "")).lower() == email]
    others = [str(e.get("name") or "") for e in entries if e not in mine]
    if case.requester != email and case.requester_name:
        others.append(case.requester_name)
    approvals = session.scalars(
        select(ApprovalRequest).where(ApprovalRequest.case_id == case.id)
    ).all()
    others += [a.approver_name for a in approvals if a.approver_email != email]
    mask = _Masker(email, own, others)
    named_as = []
    if case.requester == email:
        named_as.append("requester")
    for key in ("nominees", "main_contact", "signer"):
        if any(e in mine for e in _people_in((case.fields or {}).get(key))):
            named_as.append(key.rstrip("s"))
    if any(a.approver_email == email for a in approvals):
        named_as.append("approver")
    return {
        "ref": case.ref,
        "kind": case.kind,
        "state": case.state,
        "organisation": case.organisation_code,
        "created_at": _iso(case.created_at),
        "updated_at": _iso(case.updated_at),
        "named_as": named_as,
        "entries": [{k: mask(v) if isinstance(v, str) else v for k, v in e.items()} for e in mine],
        "requester_name": case.requester_name if case.requester == email else None,
        "approvals": [
            {
                "created_at": _iso(a.created_at),
                "status": a.status,
                "capacity": a.capacity,
                "answered_at": _iso(a.used_at),
            }
            for a in approvals
            if a.approver_email == email
        ],
        "history": [
            {"at": _iso(e.at), "event": e.event, "detail": mask(e.detail)}
            for e in session.scalars(
                select(CaseEvent)
                .where(CaseEvent.case_id == case.id, CaseEvent.actor == email)
                .order_by(CaseEvent.id)
            )
        ],
        "_mask": mask,
    }


def _their_text(
    session: Session, store: RawStore | None, message: InboundMessage, mask: _Masker
) -> dict[str, Any]:
    """The text and attachment names of an email they sent, while its bytes are kept."""
    if store is None or message.purged_at is not None:
        return {"text": None, "attachments": []}
    try:
        raw = store.get(message.sha256)
    except (RawMissing, ValueError):
        blob = session.get(RawBlob, message.sha256)
        if blob is None:
            return {"text": None, "attachments": []}
        raw = bytes(blob.data)
    mail = parse_mail(raw)
    return {"text": mask(mail.text), "attachments": [a.filename for a in mail.attachments]}


def export_person(
    session: Session, email: str, *, raw_dir: str | Path | None = None
) -> dict[str, Any]:
    """The subject-access document for one address (`pcse person export`); with the raw
    store, the text of the emails they sent is in it too."""
    address = require_email(email)
    person = directory.get_person(session, address)
    own = {person.name} if person else set()
    cases = [_case_export(session, c, address, own) for c in _cases_naming(session, address)]
    masks = {c["ref"]: c.pop("_mask") for c in cases}
    plain = _Masker(address, own, [])
    store = RawStore(raw_dir) if raw_dir is not None else None
    refs = dict(session.execute(select(Case.id, Case.ref)).all()) if cases else {}
    received = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.from_address == address)
        .order_by(InboundMessage.id)
    ).all()
    sent = session.scalars(
        select(OutboxMessage).where(OutboxMessage.to_address == address).order_by(OutboxMessage.id)
    ).all()

    def mask_for(case_id: int | None) -> _Masker:
        return masks.get(refs.get(case_id or -1, ""), plain)

    return {
        "email": address,
        "person": (
            {
                "name": person.name,
                "active": person.active,
                "created_at": _iso(person.created_at),
                "deactivated_at": _iso(person.deactivated_at),
            }
            if person
            else None
        ),
        "roles": [
            {
                "organisation": r.organisation.code,
                "service": r.service,
                "role": r.role,
                "granted_at": _iso(r.granted_at),
                "granted_by": plain(r.granted_by),
                "ended_at": _iso(r.ended_at),
                "ended_by": plain(r.ended_by),
            }
            for r in session.scalars(
                select(RoleAssignment)
                .join(Person, RoleAssignment.person_id == Person.id)
                .where(Person.email == address)
                .order_by(RoleAssignment.id)
            )
        ],
        "signer_of": [
            {"organisation": s.organisation.code, "capacity": s.capacity, "active": s.active}
            for s in session.scalars(select(Signer).where(Signer.email == address))
        ],
        "ael_entries": [
            {"icb": a.icb_code, "ael_role": a.ael_role, "active": a.active}
            for a in session.scalars(select(AelContact).where(AelContact.email == address))
        ],
        "directory_history": [
            {
                "at": _iso(e.at),
                "action": e.action,
                "organisation": e.organisation_code,
                "by": plain(e.actor),
                "reason": plain(e.reason),
            }
            for e in session.scalars(
                select(DirectoryEvent)
                .where(DirectoryEvent.person_email == address)
                .order_by(DirectoryEvent.id)
            )
        ],
        "cases": cases,
        "messages": [
            {
                "direction": "in",
                "at": _iso(m.received_at),
                "case": refs.get(m.case_id or -1),
                "subject": mask_for(m.case_id)(m.subject),
                "status": m.status,
                **_their_text(session, store, m, mask_for(m.case_id)),
            }
            for m in received
        ]
        + [
            {
                "direction": "out",
                "at": _iso(m.created_at),
                "case": refs.get(m.case_id or -1),
                "subject": mask_for(m.case_id)(m.subject),
                "purpose": m.purpose,
                "status": m.status,
                "text": mask_for(m.case_id)(m.body_text),
            }
            for m in sent
        ],
    }


# --------------------------------------------------------------------------- erasure


@dataclass
class ErasureReport:
    marker: str
    rows: dict[str, int] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)
    raw_messages: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "marker": self.marker,
            "rows": self.rows,
            "cases": self.cases,
            "raw_messages": self.raw_messages,
        }


def _text_columns(table: Table) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)]


def _replace(value: Any, pattern: re.Pattern[str], replacement: str) -> Any:
    """The value with the pattern replaced, matched in NFC: a name may be stored composed
    ("á") or decomposed ("a" and a combining accent), as PDFs and some mail programs write it."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    composed = unicodedata.normalize("NFC", text)
    if not pattern.search(composed):
        return value
    changed = pattern.sub(replacement, composed)
    return changed if isinstance(value, str) else json.loads(changed)


def _scan(
    session: Session,
    table: Table,
    needle: str,
    pattern: re.Pattern[str],
    replacement: str,
    only: Any = None,
) -> list[dict[str, Any]]:
    """Replace `pattern` in every text column of `table` whose text holds `needle`;
    returns the rows changed (their primary keys and case_id where the table has one)."""
    changed: list[dict[str, Any]] = []
    keys = list(table.primary_key.columns)
    for column in _text_columns(table):
        extra = [table.c.case_id] if "case_id" in table.c and table.c.case_id not in keys else []
        query = select(*keys, *extra, column)
        if needle.isascii():
            query = query.where(
                func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)
            )
        # Else every row in `only` is read: a name beyond ASCII may be stored escaped in JSON
        # ("SIOBH\u00c1N"), in capitals the database's lower() leaves, or decomposed, where
        # no search in SQL finds it; the pattern finds it in Python.
        if only is not None:
            query = query.where(only)
        for row in session.execute(query).all():
            before = row[-1]
            after = _replace(before, pattern, replacement)
            if after == before:
                continue
            where = [k == row[i] for i, k in enumerate(keys)]
            session.execute(update(table).where(*where).values({column.name: after}))
            changed.append(row._asdict())
    return changed


def _names_of(session: Session, address: str) -> set[str]:
    """The names recorded beside this address anywhere."""
    names: set[str] = set()
    pairs = [
        (Person.name, Person.email),
        (Signer.name, Signer.email),
        (AelContact.name, AelContact.email),
        (ApprovalRequest.approver_name, ApprovalRequest.approver_email),
        (InboundMessage.from_name, InboundMessage.from_address),
        (OutboxMessage.to_name, OutboxMessage.to_address),
        (Case.requester_name, Case.requester),
        (RoleChange.person_name, RoleChange.person_email),
    ]
    for name, email in pairs:
        names.update(n for n in session.scalars(select(name).where(email == address)) if n)
    for fields_value in session.scalars(
        select(Case.fields).where(func.lower(cast(Case.fields, Text)).like(f"%{address}%"))
    ):
        for entry in _people_in(fields_value):
            if str(entry.get("email", "")).lower() == address and entry.get("name"):
                names.add(str(entry["name"]))
    return {" ".join(n.split()) for n in names if len(" ".join(n.split())) >= MIN_NAME}


def _refuse_if_not_erasable(session: Session, address: str) -> None:
    staff = Base.metadata.tables.get("caseworkers")
    if (
        staff is not None
        and session.execute(select(staff.c.id).where(func.lower(staff.c.email) == address)).first()
    ):
        raise ErasureRefused(
            f"{address} is a caseworker account: staff accounts are deactivated, not erased, "
            "because their actions are the service's audit trail."
        )
    if directory.roles_of(session, address):
        raise ErasureRefused(
            f"{address} still holds roles: end them first (deactivate the person on the "
            "directory page), so that PCSE Online is told through the change feed, then erase."
        )


def _hold_what_names(session: Session, address: str) -> None:
    """Hold the cases naming the address (with their organisations), then the person, as
    a deactivation holds them, before checking that they hold no roles. An approval for
    them landing meanwhile would otherwise leave an erased, inactive person holding a role
    no count sees; it waits instead, then finds its case rewritten and goes to a person."""
    hold_cases_by_id(session, {case.id for case in _cases_naming(session, address)})
    directory.hold_person(session, address, exclusive=True)


def erase_person(
    session: Session,
    email: str,
    *,
    by: str,
    reason: str,
    raw_dir: str | Path,
    now: datetime,
) -> ErasureReport:
    """Erase one address and the name beside it, keeping the skeleton (see the module)."""
    address = require_email(email)
    _hold_what_names(session, address)
    _refuse_if_not_erasable(session, address)
    marker = f"erased-{uuid.uuid4().hex[:12]}@erased.invalid"
    report = ErasureReport(marker)
    names = _names_of(session, address)
    by_address = re.compile(re.escape(address), re.IGNORECASE)
    touched_cases = {row_case.id for row_case in _cases_naming(session, address)}
    # Read before the scan below writes the marker in their place.
    from_them = set(
        session.scalars(
            select(InboundMessage.id).where(func.lower(InboundMessage.from_address) == address)
        )
    )
    named_messages: set[int] = set()
    for table in Base.metadata.sorted_tables:
        changed = _scan(session, table, address, by_address, marker)
        if changed:
            report.rows[table.name] = len(changed)
        if table.name == "cases":
            touched_cases.update(r["id"] for r in changed)
        if table.name == InboundMessage.__tablename__:
            named_messages.update(r["id"] for r in changed)
        touched_cases.update(r["case_id"] for r in changed if r.get("case_id"))
    # The hourly cap's key is the address's mailbox ("jane+pcse@x" is "jane@x"), which the
    # scan does not find where it differs from the address.
    session.execute(
        update(OutboxMessage).where(OutboxMessage.to_address == marker).values(cap_key=None)
    )
    if names:
        _erase_names(session, names, marker, touched_cases)
    report.raw_messages = _remove_originals(
        session, RawStore(raw_dir), from_them | named_messages, touched_cases, now
    )
    if not report.rows and not report.raw_messages:
        raise ErasureRefused(f"Nothing names {address}: there is nothing to erase.")
    _erase_directory_names(session, marker)
    session.flush()
    said = by_address.sub(marker, reason)
    if names:  # the operator's reason may name them too ("asked by David Lowe")
        said = _names_pattern(names).sub(ERASED_NAME, unicodedata.normalize("NFC", said))
    for case in session.scalars(select(Case).where(Case.id.in_(touched_cases or {-1}))):
        report.cases.append(case.ref)
        record(
            session,
            case,
            "erasure",
            f"A person named in this case was erased: {said}",
            actor=by,
            data={"marker": marker},
            at=now,
        )
    directory.record_event(
        session,
        actor=by,
        action="person_erased",
        reason=said,
        person_email=marker,
        detail={"rows": report.rows, "raw_messages": report.raw_messages},
        now=now,
    )
    session.flush()
    return report


def _remove_originals(
    session: Session, store: RawStore, messages: set[int], cases: set[int], now: datetime
) -> int:
    """Remove the original emails that named the person: these ledger rows (from them, or
    naming them in a column the scan rewrote) and every email of the cases that named them
    (raw bytes cannot be edited without breaking them). An email that names them only in
    its body, on no case, is not found here; the retention purge removes it with the rest."""
    originals = list(
        session.scalars(
            select(InboundMessage).where(
                or_(
                    InboundMessage.id.in_(messages or {-1}),
                    InboundMessage.case_id.in_(cases or {-1}),
                    InboundMessage.id.in_(
                        select(Case.source_message_id).where(Case.id.in_(cases or {-1}))
                    ),
                )
            )
        )
    )
    removed = remove_raw(session, store, originals)
    for message in originals:
        message.purged_at = message.purged_at or now
    session.flush()
    return removed


def _names_pattern(names: set[str]) -> re.Pattern[str]:
    """Any of the names in NFC, the longest first (so that "Anil Patel" goes before "Anil"),
    in any case."""
    composed = {unicodedata.normalize("NFC", n) for n in names}
    ordered = sorted(composed, key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in ordered), re.IGNORECASE)


def _erase_names(session: Session, names: set[str], marker: str, cases: set[int]) -> None:
    """The person's names, in the rows of the cases that named them and in the other rows
    where their address stood (now the marker), and nowhere else: another person may
    share the name."""
    ordered = sorted(names, key=len, reverse=True)
    by_name = _names_pattern(names)
    for table in Base.metadata.sorted_tables:
        if not _text_columns(table):
            continue
        only: ColumnElement[bool]
        if table.name == "cases":
            only = table.c.id.in_(cases or {-1})
        elif "case_id" in table.c:
            only = table.c.case_id.in_(cases or {-1})
        else:
            only = or_(
                *[cast(c, Text).contains(marker, autoescape=True) for c in _text_columns(table)]
            )
        for name in ordered:
            _scan(session, table, name, by_name, ERASED_NAME, only)


def _erase_directory_names(session: Session, marker: str) -> None:
    """The name columns beside the marker, wherever the address stood."""
    for name, email in [
        (Person.name, Person.email),
        (Signer.name, Signer.email),
        (AelContact.name, AelContact.email),
        (ApprovalRequest.approver_name, ApprovalRequest.approver_email),
        (InboundMessage.from_name, InboundMessage.from_address),
        (OutboxMessage.to_name, OutboxMessage.to_address),
        (Case.requester_name, Case.requester),
        (RoleChange.person_name, RoleChange.person_email),
    ]:
        session.execute(update(name.class_).where(email == marker).values({name.key: ERASED_NAME}))
    session.execute(update(Person).where(Person.email == marker).values(active=False))
