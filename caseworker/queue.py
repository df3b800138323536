"""The queue: counts by state, and what needs a person first, oldest first.

Needing a person, in this order: cases in triage or marked with a new reply (in any state),
then inbound messages that failed to process, then outbox rows that failed or were held.
Filters (state, kind, organisation, who has it, new replies, overdue against the target
times) and the search (reference, email address, ODS code) narrow what is listed. The web
page and `pcse queue --needs-person` list the same rows, built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from caseworker.labels import kind_label
from caseworker.timeutil import age
from core.patterns import mask_tokens
from core.states import FINAL_STATES, CaseKind, CaseState
from core.timeutil import as_utc
from forms.normalise import clean_ods
from intake.models import InboundMessage
from notifications.claims import unconfirmed_clause
from notifications.models import OutboxMessage
from workflow.models import Case
from workflow.targets import CaseTimes, TargetsConfig, overdue

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
    new_reply: bool = False  # only cases marked with a new reply
    overdue: bool = False  # only cases past a target time
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
            new_reply=params.get("new_reply") == "1",
            overdue=params.get("overdue") == "1",
            me=me,
        )

    def as_query(self) -> dict[str, str]:
        values = {
            "state": self.state if self.state != NEEDS_PERSON else "",
            "kind": self.kind,
            "organisation": self.organisation,
            "q": self.search,
            "assigned": self.assigned,
            "new_reply": "1" if self.new_reply else "",
            "overdue": "1" if self.overdue else "",
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
    since: datetime | None  # what the age counts from; None for a closed case (no age)
    age: str
    reason: str
    assigned_to: str | None = None
    item: str = ""  # what a bulk action names: "case:REF", "message:ID", "outbox:ID"
    code: str = ""  # the kind as the JSON gives it (a CaseKind, or the problem's name)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    new_reply_at: datetime | None = None
    new_reply_age: str = ""
    overdue: tuple[str, ...] = ()  # workflow.targets ACKNOWLEDGE, DECIDE

    def as_json(self) -> dict[str, Any]:
        """`pcse queue --json`'s keys for one row, whatever its source."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "ref": self.reference,
            "kind": self.code,
            "state": self.state,
            "organisation": self.organisation,
            "requester": self.requester,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "reason": self.reason,
            "item": self.item,
            "assigned_to": self.assigned_to,
            "new_reply_at": iso(self.new_reply_at),
            "overdue": list(self.overdue),
        }


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int
    counts: list[tuple[str, int]]
    failed_messages: int
    outbox_problems: int
    new_replies: int = 0
    overdue: int = 0


def state_counts(session: Session) -> list[tuple[str, int]]:
    found = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    return [(str(state), int(found.get(str(state), 0))) for state in CaseState]


def needs_person_clause():
    """A case needs a person in triage, or with a reply nobody has read, whatever its state."""
    return or_(Case.state == CaseState.TRIAGE.value, Case.new_reply_at.is_not(None))


def _case_query(filters: QueueFilters, overdue_ids: list[int] | None = None) -> Select:
    query = select(Case)
    if filters.state == NEEDS_PERSON:
        query = query.where(needs_person_clause())
    elif filters.state != ALL_STATES:
        query = query.where(Case.state == filters.state)
    if filters.new_reply:
        query = query.where(Case.new_reply_at.is_not(None))
    if overdue_ids is not None:
        query = query.where(Case.id.in_(overdue_ids) if overdue_ids else false())
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
    # Failed messages and outbox rows have no state, kind, assignee, reply or target.
    return (
        filters.state == NEEDS_PERSON
        and not filters.kind
        and not filters.assigned
        and not filters.new_reply
        and not filters.overdue
    )


def _times(case: Case) -> CaseTimes:
    return CaseTimes(
        case.state, case.created_at, case.updated_at, case.new_reply_at, case.assigned_to
    )


def overdue_ids(session: Session, targets: TargetsConfig, now: datetime) -> list[int]:
    """Open or marked cases past a target time. Working days do not fit a SQL interval, so
    the few candidates are checked here: open cases and those needing a person."""
    candidates = session.execute(
        select(
            Case.id,
            Case.state,
            Case.created_at,
            Case.updated_at,
            Case.new_reply_at,
            Case.assigned_to,
        ).where(
            or_(Case.state.not_in([str(s) for s in FINAL_STATES]), Case.new_reply_at.is_not(None))
        )
    ).all()
    return [row.id for row in candidates if overdue(CaseTimes(*row[1:]), targets, now)]


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


def _new_reply_text(reply: InboundMessage | None) -> str:
    if reply is None:
        return "New reply."
    sender = reply.from_address or "(no single address)"
    return f"New reply from {sender}: {mask_tokens(reply.subject or '(no subject)')}"


def case_row(
    case: Case, now: datetime, targets: TargetsConfig, reply: InboundMessage | None = None
) -> QueueRow:
    """An open case's age counts from its last change; a closed one shows none. A new reply
    is shown in place of the reason, with how long it has waited."""
    closed = CaseState(case.state) in FINAL_STATES
    since = None if closed else as_utc(case.updated_at)
    marked = case.new_reply_at is not None
    return QueueRow(
        "case",
        case.ref,
        f"/cases/{case.ref}",
        kind_label(case.kind),
        case.state,
        case.organisation_code,
        case.requester,
        since,
        age(since, now) if since else "",
        _new_reply_text(reply) if marked else case.reason or "",
        case.assigned_to,
        item=f"case:{case.ref}",
        code=case.kind,
        created_at=as_utc(case.created_at),
        updated_at=as_utc(case.updated_at),
        new_reply_at=as_utc(case.new_reply_at),
        new_reply_age=age(case.new_reply_at, now) if marked else "",
        overdue=tuple(overdue(_times(case), targets, now)),
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
        item=f"message:{message.id}",
        code="failed_message",
        created_at=as_utc(message.received_at),
        updated_at=as_utc(message.received_at),
    )


OUTBOX_LABELS = {"held": "Held email", "sent": "Unconfirmed email"}
OUTBOX_CODES = {"held": "held_email", "sent": "unconfirmed_email"}


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
        item=f"outbox:{row.id}",
        code=OUTBOX_CODES.get(row.status, "failed_email"),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.created_at),
    )


def _case_rows(session: Session, now: datetime, targets: TargetsConfig):
    def make(case: Case, now: datetime) -> QueueRow:
        reply = (
            session.get(InboundMessage, case.new_reply_message_id)
            if case.new_reply_message_id
            else None
        )
        return case_row(case, now, targets, reply)

    return make


def queue_page(
    session: Session,
    filters: QueueFilters,
    *,
    page: int,
    page_size: int,
    now: datetime,
    targets: TargetsConfig | None = None,
) -> QueuePage:
    """One page of the queue; the three sources are listed one after another, each oldest
    first, and paged as one list."""
    targets = targets or TargetsConfig()
    late = overdue_ids(session, targets, now) if filters.overdue else None
    sources: list[tuple[Select, Any, Any]] = [
        (_case_query(filters, late), (Case.created_at, Case.id), _case_rows(session, now, targets)),
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
        new_replies=_count(session, select(Case.id).where(Case.new_reply_at.is_not(None))),
        overdue=len(late if late is not None else overdue_ids(session, targets, now)),
    )


def needs_person_rows(session: Session, *, now: datetime, targets: TargetsConfig) -> list[QueueRow]:
    """Everything the queue's default view lists, on every page, in its order."""
    rows: list[QueueRow] = []
    page, pages = 1, 1
    while page <= pages:
        found = queue_page(
            session, QueueFilters(), page=page, page_size=5000, now=now, targets=targets
        )
        rows.extend(found.rows)
        page, pages = page + 1, found.pages
    return rows
