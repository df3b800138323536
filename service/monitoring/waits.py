"""How long practices wait, as histogram buckets counted by the database itself.

The same moments as caseworker.report (arrival; the first email sent to the requester;
the last move into a final state), but summed in one aggregate query per measure over the
cases opened in a recent window, so that a scrape costs what that window holds, in the
database, rather than a row per case ever opened, in Python. tests/test_metrics.py checks
the two agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, literal, select
from sqlalchemy.orm import Session

from core.states import FINAL_STATES
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow.models import Case, CaseEvent

# Seconds: a minute to a month, for the times a practice waits.
WAIT_BUCKETS = (
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    4 * 3600.0,
    8 * 3600.0,
    86400.0,
    2 * 86400.0,
    3 * 86400.0,
    7 * 86400.0,
    14 * 86400.0,
    30 * 86400.0,
)
FINALS = sorted(str(s) for s in FINAL_STATES)
UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _seconds(session: Session, column: Any) -> Any:
    """A timestamp column as seconds since 1970, as the database computes it."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - UNIX_EPOCH_JULIAN_DAY) * 86400.0
    return cast(func.extract("epoch", column), Float)


def _earlier(session: Session, a: Any, b: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return func.min(a, b)  # two arguments: SQLite's scalar min
    return func.least(a, b)


def _per_case(session: Session, measure: str, since: datetime | None) -> Any:
    """Per case opened since `since` that has one: when it arrived and when the measure
    ends (case_id, arrived, at). Driven from the cases, so the cost follows the window."""
    arrived = func.min(
        _earlier(
            session, Case.created_at, func.coalesce(InboundMessage.received_at, Case.created_at)
        )
    )
    at: Any
    if measure == "acknowledgement":
        at = func.min(OutboxMessage.sent_at)
        ends = (
            select(Case.id, arrived.label("arrived"), at.label("at"))
            .join(OutboxMessage, OutboxMessage.case_id == Case.id)
            .where(OutboxMessage.sent_at.is_not(None), OutboxMessage.to_address == Case.requester)
        )
    else:
        at = func.max(CaseEvent.at)
        ends = (
            select(Case.id, arrived.label("arrived"), at.label("at"))
            .join(CaseEvent, CaseEvent.case_id == Case.id)
            .where(
                Case.state.in_(FINALS),
                CaseEvent.event == "transition",
                CaseEvent.to_state.in_(FINALS),
            )
        )
    if since is not None:
        ends = ends.where(Case.created_at >= since)
    return (
        ends.outerjoin(InboundMessage, InboundMessage.id == Case.source_message_id)
        .group_by(Case.id)
        .subquery()
    )


def wait_histogram(
    session: Session, measure: str, since: datetime | None = None
) -> tuple[int, float, list[int]]:
    """Over the cases opened since `since` (all, for None): (count, sum of seconds,
    cumulative count at each bound of WAIT_BUCKETS)."""
    per_case = _per_case(session, measure, since)
    raw = _seconds(session, per_case.c.at) - _seconds(session, per_case.c.arrived)
    if session.get_bind().dialect.name == "sqlite":
        raw = func.round(raw, 3)  # julianday's days are floats: 1800 s must stay 1800
    waits = select(case((raw < 0, literal(0.0)), else_=raw).label("seconds")).subquery()
    seconds = waits.c.seconds
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(seconds), 0.0),
            *(func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in WAIT_BUCKETS),
        ).select_from(waits)
    ).one()
    count, total, *cumulative = row
    return int(count), float(total), [int(n) for n in cumulative]
