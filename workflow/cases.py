"""The case store: create cases, move them through the state table, record their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.db import add_inserted, pending_may_wait
from core.errors import PcseError
from core.states import WAITING_STATES, CaseKind, CaseState, check_move
from core.timeutil import utcnow
from workflow import history_lines
from workflow.models import Case, RefCounter


class CaseNotFound(PcseError, LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"There is no case {ref}.")
        self.ref = ref


class StaleCase(PcseError, RuntimeError):
    """Someone else moved the case first; the caller's view of it is out of date."""

    def __init__(self, ref: str, expected: str, actual: str | None) -> None:
        super().__init__(
            f"Case {ref} was expected in state {expected} but is now {actual}; "
            "someone else acted on it first."
        )
        self.ref = ref
        self.expected = expected
        self.actual = actual


def format_ref(year: int, number: int) -> str:
    return f"PCSE-{year}-{number:06d}"


def next_ref(session: Session, now: datetime | None = None) -> str:
    """Allocate the next case reference atomically (safe with concurrent workers).

    On PostgreSQL the number is taken in a short transaction of its own, as a sequence
    would give it: the year's counter row is locked for that moment only, never for the
    length of the caller's transaction (a batch of messages), so workers do not queue
    behind one another for it. A transaction that rolls back leaves a gap in the numbers.
    SQLite has one writer at a time anyway, so there it is taken in the caller's
    transaction.
    """
    year = (now or utcnow()).year
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        with bind.engine.connect() as own, own.begin():
            number = own.execute(_BUMP_POSTGRESQL, {"year": year}).scalar_one()
    else:
        number = session.connection().execute(_BUMP_SQLITE, {"year": year}).scalar_one()
    return format_ref(year, number)


def _bump(insert: Any) -> Any:
    return (
        insert(RefCounter)
        .values(year=bindparam("year"), last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": RefCounter.last + 1})
        .returning(RefCounter.last)
    )


# Built once: these run for every case opened.
_BUMP_POSTGRESQL = _bump(postgresql.insert)
_BUMP_SQLITE = pending_may_wait(_bump(sqlite.insert))


def get_case(session: Session, ref: str) -> Case:
    case = session.scalars(select(Case).where(Case.ref == ref.strip().upper())).first()
    if case is None:
        raise CaseNotFound(ref)
    return case


def record(
    session: Session,
    case: Case,
    event: str,
    detail: str,
    *,
    actor: str = "system",
    data: dict[str, Any] | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Append one line to the case's history (written with the lines around it, before
    the transaction's next statement: see workflow.history_lines). Returns the line's
    values (a case gets about ten lines: no ORM object is made for each)."""
    line = {
        "case_id": case.id,
        "at": at or utcnow(),
        "actor": actor,
        "event": event,
        "detail": detail,
        "data": data or {},
        "from_state": from_state,
        "to_state": to_state,
    }
    history_lines.append(session, line)
    return line


# session.info key: the cases opened in this session.
OPENED = "workflow.cases.opened"


def create_case(
    session: Session,
    *,
    kind: CaseKind | str,
    requester: str,
    requester_name: str | None = None,
    organisation_code: str | None = None,
    subject: str | None = None,
    fields: dict[str, Any] | None = None,
    findings: list[dict[str, Any]] | None = None,
    source_message_id: int | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> Case:
    now = now or utcnow()
    case = Case(
        ref=next_ref(session, now),
        kind=str(CaseKind(kind)),
        state=str(CaseState.RECEIVED),
        organisation_code=organisation_code,
        requester=requester.lower(),
        requester_name=requester_name,
        subject=subject,
        fields=fields or {},
        findings=findings or [],
        source_message_id=source_message_id,
        created_at=now,
        updated_at=now,
    )
    add_inserted(session, case)
    # Held for the rest of the session, so that what intake logs about it is read from
    # memory (the identity map holds objects weakly).
    session.info.setdefault(OPENED, []).append(case)
    record(
        session,
        case,
        "created",
        f"Case opened as {case.kind}.",
        actor=actor,
        to_state=case.state,
        at=now,
    )
    return case


def move(
    session: Session,
    case: Case,
    target: CaseState | str,
    *,
    actor: str,
    reason: str,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Case:
    """Move `case` to `target`, guarded in the database against concurrent moves.

    Raises IllegalTransition when the table forbids the move (nothing changes) and
    StaleCase when another worker moved the case since it was read.
    """
    source = CaseState(case.state)
    target = CaseState(target)
    check_move(source, target)
    now = now or utcnow()
    values: dict[str, Any] = {"state": str(target), "reason": reason, "updated_at": now}
    if target in WAITING_STATES:
        values["waiting_since"] = now
        values["reminded_at"] = None
    statement = _MOVE_TO_WAITING if target in WAITING_STATES else _MOVE
    result = session.connection().execute(
        statement, {**values, "b_id": case.id, "b_source": str(source)}
    )
    if result.rowcount != 1:
        actual = session.scalar(select(Case.state).where(Case.id == case.id))
        raise StaleCase(case.ref, str(source), actual)
    for key, value in values.items():
        # Keep the in-memory object in step without issuing a second UPDATE.
        set_committed_value(case, key, value)
    record(
        session,
        case,
        "transition",
        reason,
        actor=actor,
        data=data,
        from_state=str(source),
        to_state=str(target),
        at=now,
    )
    return case


_CASES = cast(Table, Case.__table__)
_MOVE = pending_may_wait(
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_id"), _CASES.c.state == bindparam("b_source"))
    .values(
        state=bindparam("state"), reason=bindparam("reason"), updated_at=bindparam("updated_at")
    )
)
_MOVE_TO_WAITING = _MOVE.values(
    waiting_since=bindparam("waiting_since"), reminded_at=bindparam("reminded_at")
)


def case_summary(case: Case) -> dict[str, Any]:
    """The queue's JSON keys (design contract)."""
    return {
        "ref": case.ref,
        "kind": case.kind,
        "state": case.state,
        "organisation": case.organisation_code,
        "requester": case.requester,
        "created_at": case.created_at.isoformat() if case.created_at else None,
        "updated_at": case.updated_at.isoformat() if case.updated_at else None,
        "reason": case.reason,
    }


def history(case: Case) -> list[dict[str, Any]]:
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "event": e.event,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "detail": e.detail,
            "data": e.data,
        }
        for e in case.events
    ]
