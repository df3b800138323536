"""The case store: create cases, move them through the state table, record their history."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Integer,
    Table,
    Text,
    bindparam,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction

from core.db import note_holding, write_now
from core.errors import PcseError
from core.rowwrites import (
    add_inserted,
    add_inserted_by,
    insert_columns,
    outermost,
    pending_may_wait,
    set_written,
)
from core.states import WAITING_STATES, CaseKind, CaseState, check_move
from core.timeutil import utcnow
from workflow import directory, history_lines
from workflow.models import Case, Organisation, RefCounter


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


def insert_numbered(session: Session, case: Case, now: datetime) -> None:
    """Insert the new `case` with the next reference of its year (never one twice, safe
    with concurrent workers), as add_inserted would.

    On PostgreSQL the number comes from the year's sequence (`pcse_next_case_number`,
    migration 0008), taken by the INSERT itself (one round trip for both), in the caller's
    transaction: a sequence holds no lock to the end of the transaction (a batch of
    messages), so workers never queue behind one another for it, and a transaction that
    rolls back leaves a gap. The year's first case makes its sequence in a short
    transaction of its own, committed at once for every worker (a transaction that began
    before then goes on taking its numbers that way). Nothing is kept in memory between
    transactions, so a database restored to an earlier state goes on from its own numbers.

    SQLite has one writer at a time, holding its lock to the commit: the counter is read
    and raised once in the caller's transaction, later numbers are counted in memory, and
    the last one is written as the transaction commits (a number used in a savepoint that
    rolled back is skipped, never given again).
    """
    year = now.year
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        # Nothing inserted: no sequence this transaction can see, the year's first case.
        if add_inserted_by(session, case, _numbered_insert(), year=year):
            return
        case.ref = format_ref(year, _first_of_year(bind.engine, year))
    else:
        case.ref = format_ref(year, _counted(session, year))
    add_inserted(session, case)


class CaseNumbersUnavailable(PcseError):
    """The year's case numbers could not be started (the database refused to make them)."""


def _first_of_year(engine: Engine, year: int) -> int:
    """A number from the year's sequence, taken (and the sequence made, if need be) in a
    short transaction of its own: for a transaction that does not see the sequence yet,
    made by this call or by another worker since it began."""
    try:
        with engine.connect() as own, own.begin():
            return int(own.execute(_FIRST_POSTGRESQL, {"year": year}).scalar_one())
    except DBAPIError as exc:
        # intake.process.database_gone takes any OperationalError for an outage (the batch
        # waits and is tried again), following __cause__ and __context__: what is an outage
        # is raised as it is, and a refusal below is raised outside this block, unchained.
        if exc.connection_invalidated or _sqlstate(exc).startswith(_TRANSIENT):
            raise
        refused = str(exc.orig).splitlines()[0][:300].rstrip(". ")
    raise CaseNumbersUnavailable(
        f"The case numbers for {year} could not be started, so no case was opened: "
        f"{refused}. Run `pcse db upgrade` with the service's configuration (and so its "
        "database role), which makes them, then retry this message."
    )


# Connection failures, the server shutting down, a lock not had in time.
_TRANSIENT = ("08", "57", "55P03")


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", "") or "")


_COUNTED = "workflow.cases.counted"  # connection.info: {year: last number given}


def _counted(session: Session, year: int) -> int:
    conn = session.connection()
    counted: dict[int, int] = conn.info.setdefault(_COUNTED, {})
    if year in counted:
        counted[year] += 1
    else:
        counted[year] = conn.execute(_BUMP_SQLITE, {"year": year, "by": 1}).scalar_one()
    session.info.setdefault(_COUNTING, set()).add(conn)
    return counted[year]


_COUNTING = "workflow.cases.counting"  # session.info: connections with numbers counted


@event.listens_for(Session, "before_commit")
def _write_counted(session: Session) -> None:
    if not outermost(session):
        return  # a savepoint released: the transaction goes on
    for conn in session.info.pop(_COUNTING, ()):
        counted = conn.info.pop(_COUNTED, None) if not conn.closed else None
        for year, last in (counted or {}).items():
            conn.execute(_KEEP_HIGHEST, {"year": year, "last": last})


@event.listens_for(Session, "after_transaction_end")
def _forget_counting(session: Session, ended: SessionTransaction) -> None:
    if ended.parent is None:  # not a savepoint: what was counted is written or gone
        session.info.pop(_COUNTING, None)


@event.listens_for(Engine, "rollback")
def _forget_counted(conn: Connection) -> None:
    # The raise of the counter went with the transaction; the next one reads it afresh.
    if not conn.invalidated:
        conn.info.pop(_COUNTED, None)


@functools.cache
def _numbered_insert() -> Insert:
    """PostgreSQL: the case's INSERT, its reference made of the year's next number (as
    format_ref makes it), or no row when the year has no sequence the transaction sees.
    Built once: it runs for every case opened."""
    table = cast(Table, Case.__table__)
    found = select(
        func.pcse_next_case_number(bindparam("year", type_=Integer), type_=Integer).label("n")
    ).cte("case_number")
    digits = sql_cast(found.c.n, Text)
    ref = (
        literal("PCSE-")
        + sql_cast(bindparam("year", type_=Integer), Text)
        + literal("-")
        + sql_case((found.c.n < 1_000_000, func.lpad(digits, 6, "0")), else_=digits)
    )
    columns = [column for column in insert_columns(Case) if column != "ref"]
    numbered = select(*(bindparam(c, type_=table.c[c].type) for c in columns), ref).where(
        found.c.n.is_not(None)
    )
    statement = insert(table).from_select([*columns, "ref"], numbered)
    return pending_may_wait(statement.returning(table.c.id, table.c.ref))


# Built once: the first of a year's cases, once a year.
_FIRST_POSTGRESQL = select(
    func.pcse_first_case_number(bindparam("year", type_=Integer), type_=Integer)
)
# SQLite: raise the year's counter by `by`, returning the new last number.
_BUMP_SQLITE = pending_may_wait(
    sqlite.insert(RefCounter)
    .values(year=bindparam("year"), last=bindparam("by"))
    .on_conflict_do_update(
        index_elements=["year"], set_={"last": RefCounter.last + bindparam("by")}
    )
    .returning(RefCounter.last)
)
# The counter's last value written at commit, never lowered (the first raise may have
# been in a savepoint that rolled back, taking the row with it).
_KEEP_HIGHEST = pending_may_wait(
    sqlite.insert(RefCounter)
    .values(year=bindparam("year"), last=bindparam("last"))
    .on_conflict_do_update(
        index_elements=["year"],
        set_={"last": func.max(RefCounter.last, sqlite.insert(RefCounter).excluded.last)},
    )
)


def get_case(session: Session, ref: str) -> Case:
    case = session.scalars(select(Case).where(Case.ref == ref.strip().upper())).first()
    if case is None:
        raise CaseNotFound(ref)
    return case


def hold_case(session: Session, ref: str) -> Case:
    """The case, read afresh and held to the end of the transaction, and the organisation
    it names held after it.

    Work that reads a case, checks it and then writes (a caseworker's action, an
    approver's answer, a correction) takes this first. On PostgreSQL (FOR UPDATE) another
    worker's or caseworker's change to the same case, or to the roles at its organisation,
    then either waits for this work or is seen by it, never lost between its check and its
    write; the guarded move alone (`move`) sees only a change of state. The case always
    comes before its organisation, so two holders never wait on each other. On SQLite the
    write lock is taken first (core.db.write_now), and the second party waits for it.
    The transaction is marked as holding (core.db.note_holding)."""
    case = _held(session, Case.ref == ref.strip().upper())
    if case is None:
        raise CaseNotFound(ref)
    return case


def hold_case_by_id(session: Session, case_id: int) -> Case:
    """hold_case for a case known by its id."""
    case = _held(session, Case.id == case_id)
    if case is None:
        raise CaseNotFound(str(case_id))
    return case


def hold_cases(session: Session, refs: list[str]) -> dict[str, Case]:
    """hold_case for several cases at once (a merge): every case first, in the order of
    their ids, then their organisations, in the order of their ids, so that no other
    holder finds an organisation held before a case. Keyed by reference as given."""
    wanted = {ref: ref.strip().upper() for ref in refs}
    found = {case.ref: case for case in _held_all(session, Case.ref.in_(set(wanted.values())))}
    missing = [ref for ref, cleaned in wanted.items() if cleaned not in found]
    if missing:
        raise CaseNotFound(missing[0])
    return {ref: found[cleaned] for ref, cleaned in wanted.items()}


def hold_cases_by_id(session: Session, case_ids: set[int]) -> dict[int, Case]:
    """hold_cases for cases known by their ids (an answer whose code and subject name two
    cases); those that do not exist are left out."""
    return {case.id: case for case in _held_all(session, Case.id.in_(case_ids))}


def _held_all(session: Session, which: Any) -> list[Case]:
    write_now(session)
    held = list(
        session.scalars(
            select(Case)
            .where(which)
            .order_by(Case.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    _hold_organisations(session, [c.organisation_code for c in held])
    note_holding(session)
    return held


def _held(session: Session, which: Any) -> Case | None:
    return next(iter(_held_all(session, which)), None)


def _hold_organisations(session: Session, codes: list[str | None]) -> None:
    named = {code for code in codes if code}
    if named:
        directory.lock_organisations(session, Organisation.code.in_(named))


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
    insert_numbered(session, case, now)
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
    # No flush first: the UPDATE reads only the case's id and state, which the session
    # never holds unwritten (moves are written here, at once).
    result = session.connection().execute(
        statement, {**values, "b_id": case.id, "b_source": str(source)}
    )
    if result.rowcount != 1:
        actual = session.scalar(select(Case.state).where(Case.id == case.id))
        raise StaleCase(case.ref, str(source), actual)
    # Keep the in-memory object in step without issuing a second UPDATE.
    set_written(session, case, values)
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
