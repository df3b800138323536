"""The queue: counts by state, and what needs a person first, oldest first.

Needing a person, in this order: cases in triage, then inbound messages that failed to
process, then outbox rows that failed or were held. Filters (state, kind, organisation)
and the search (reference, email address, ODS code) narrow what is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from caseworker.labels import kind_label
from caseworker.timeutil import age
from core.states import CaseKind, CaseState
from core.timeutil import as_utc
from forms.normalise import clean_ods
from intake.models import InboundMessage
from notifications.claims import unconfirmed_clause
from notifications.models import OutboxMessage
from workflow.models import Case

NEEDS_PERSON = "needs_person"
ALL_STATES = "all"
# Who a case is with: the signed-in caseworker, or nobody.
ASSIGNED_TO_ME, ASSIGNED_TO_NOBODY = "me", "nobody"
OUTBOX_NEEDS_PERSON = ("failed", "held")


@dataclass(frozen=True)
class QueueFilters:
    state: str = NEEDS_PERSON  # NEEDS_PERSON, ALL_STATES or a CaseState value
    kind: str = ""
    organisation: str = ""
    search: str = ""
    assigned: str = ""  # "", ASSIGNED_TO_ME or ASSIGNED_TO_NOBODY
    me: str = ""  # the signed-in caseworker's address, for ASSIGNED_TO_ME

    @classmethod
    def from_query(cls, params: Any, *, me: str = "") -> QueueFilters:
        state = params.get("state") or NEEDS_PERSON
        if state not in {NEEDS_PERSON, ALL_STATES, *CaseState}:
            state = NEEDS_PERSON
        kind = params.get("kind") or ""
        if kind not in set(CaseKind):
            kind = ""
        organisation = clean_ods(params.get("organisation") or "")[:16]
        search = " ".join((params.get("q") or "").split())[:254]
        assigned = params.get("assigned") or ""
        if assigned not in (ASSIGNED_TO_ME, ASSIGNED_TO_NOBODY):
            assigned = ""
        return cls(
            state=state,
            kind=kind,
            organisation=organisation,
            search=search,
            assigned=assigned,
            me=me,
        )

    def as_query(self) -> dict[str, str]:
        values = {
            "state": self.state if self.state != NEEDS_PERSON else "",
            "kind": self.kind,
            "organisation": self.organisation,
            "q": self.search,
            "assigned": self.assigned,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class QueueRow:
    source: str  # "case", "message" or "outbox"
    reference: str
    href: str
    kind: str
    state: str | None
    organisation: str | None
    requester: str | None
    since: datetime | None
    age: str
    reason: str
    assigned_to: str | None = None


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int
    counts: list[tuple[str, int]]
    failed_messages: int
    outbox_problems: int


def state_counts(session: Session) -> list[tuple[str, int]]:
    found = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    return [(str(state), int(found.get(str(state), 0))) for state in CaseState]


def _case_query(filters: QueueFilters) -> Select:
    query = select(Case)
    if filters.state == NEEDS_PERSON:
        query = query.where(Case.state == CaseState.TRIAGE.value)
    elif filters.state != ALL_STATES:
        query = query.where(Case.state == filters.state)
    if filters.kind:
        query = query.where(Case.kind == filters.kind)
    if filters.organisation:
        query = query.where(Case.organisation_code == filters.organisation)
    if filters.assigned == ASSIGNED_TO_ME:
        query = query.where(Case.assigned_to == filters.me.lower())
    elif filters.assigned == ASSIGNED_TO_NOBODY:
        query = query.where(Case.assigned_to.is_(None))
    if filters.search:
        text = filters.search.lower()
        query = query.where(
            or_(
                func.lower(Case.ref).contains(text, autoescape=True),
                func.lower(Case.requester).contains(text, autoescape=True),
                Case.organisation_code == clean_ods(filters.search),
            )
        )
    return query


def _failures_apply(filters: QueueFilters) -> bool:
    # Failed messages and outbox rows have no state, kind or assignee of their own.
    return filters.state == NEEDS_PERSON and not filters.kind and not filters.assigned


def _message_query(filters: QueueFilters) -> Select:
    query = select(InboundMessage).where(InboundMessage.status == "failed")
    if filters.organisation:
        query = query.where(
            InboundMessage.case_id.in_(
                select(Case.id).where(Case.organisation_code == filters.organisation)
            )
        )
    if filters.search:
        query = query.where(
            func.lower(InboundMessage.from_address).contains(
                filters.search.lower(), autoescape=True
            )
        )
    return query


def _outbox_query(filters: QueueFilters) -> Select:
    query = select(OutboxMessage).where(
        or_(OutboxMessage.status.in_(OUTBOX_NEEDS_PERSON), unconfirmed_clause())
    )
    if filters.organisation:
        query = query.where(
            OutboxMessage.case_id.in_(
                select(Case.id).where(Case.organisation_code == filters.organisation)
            )
        )
    if filters.search:
        query = query.where(
            func.lower(OutboxMessage.to_address).contains(filters.search.lower(), autoescape=True)
        )
    return query


def _count(session: Session, query: Select) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _case_row(case: Case, now: datetime) -> QueueRow:
    # Age counts from when the request arrived: how long the requester has waited.
    return QueueRow(
        "case",
        case.ref,
        f"/cases/{case.ref}",
        kind_label(case.kind),
        case.state,
        case.organisation_code,
        case.requester,
        as_utc(case.created_at),
        age(case.created_at, now),
        case.reason or "",
        case.assigned_to,
    )


def _message_row(message: InboundMessage, now: datetime) -> QueueRow:
    return QueueRow(
        "message",
        f"Message {message.id}",
        f"/messages/{message.id}",
        "Failed message",
        None,
        None,
        message.from_address,
        as_utc(message.received_at),
        age(message.received_at, now),
        message.error or "Processing failed.",
    )


OUTBOX_LABELS = {"held": "Held email", "sent": "Unconfirmed email"}


def _outbox_row(row: OutboxMessage, now: datetime) -> QueueRow:
    reason = row.last_error or (
        "Held: too many automatic replies to this address."
        if row.status == "held"
        else "Sending failed."
    )
    return QueueRow(
        "outbox",
        f"Email {row.id}",
        f"/outbox/{row.id}",
        OUTBOX_LABELS.get(row.status, "Failed email"),
        None,
        None,
        row.to_address,
        as_utc(row.created_at),
        age(row.created_at, now),
        reason,
    )


def queue_page(
    session: Session, filters: QueueFilters, *, page: int, page_size: int, now: datetime
) -> QueuePage:
    """One page of the queue; the three sources are listed one after another, each oldest
    first, and paged as one list."""
    sources: list[tuple[Select, Any, Any]] = [
        (_case_query(filters), (Case.created_at, Case.id), _case_row),
    ]
    if _failures_apply(filters):
        sources.append(
            (_message_query(filters), (InboundMessage.received_at, InboundMessage.id), _message_row)
        )
        sources.append(
            (_outbox_query(filters), (OutboxMessage.created_at, OutboxMessage.id), _outbox_row)
        )
    totals = [_count(session, query) for query, _, _ in sources]
    total = sum(totals)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    offset = (page - 1) * page_size
    rows: list[QueueRow] = []
    for (query, order, make_row), count in zip(sources, totals, strict=True):
        if offset >= count:
            offset -= count
            continue
        wanted = page_size - len(rows)
        if wanted <= 0:
            break
        found = session.scalars(query.order_by(*order).offset(offset).limit(wanted))
        rows.extend(make_row(item, now) for item in found)
        offset = 0
    return QueuePage(
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        counts=state_counts(session),
        failed_messages=_count(session, _message_query(QueueFilters())),
        outbox_problems=_count(session, _outbox_query(QueueFilters())),
    )
