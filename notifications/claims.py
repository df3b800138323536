"""Claiming outbox rows for sending, and recording what happened to each.

A row is claimed by moving it from `pending` to `sending` under a worker id and a
lease (`claimed_until`). On PostgreSQL the candidates are locked with
`FOR UPDATE SKIP LOCKED`, so concurrent senders take disjoint rows without waiting;
on SQLite the single writer and the guard `WHERE status = 'pending'` do the same.
Every later update is guarded by the worker id, so a sender whose lease ran out and
whose rows were taken over can no longer touch them. A `sending` row whose lease has
expired (its sender died) is due again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from notifications.mime import Outgoing
from workflow.db import Database
from workflow.models import OutboxMessage

_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.message_id,
    OutboxMessage.in_reply_to,
    OutboxMessage.references,
    OutboxMessage.to_address,
    OutboxMessage.to_name,
    OutboxMessage.subject,
    OutboxMessage.body_text,
    OutboxMessage.body_html,
    OutboxMessage.attachments,
    OutboxMessage.auto_submitted,
    OutboxMessage.attempts,
)


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.claimed_until < now),
    )


def claim_due(
    db: Database, *, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[Outgoing]:
    """Claim up to `limit` due rows for `worker`, oldest first, and return them."""
    candidates = (
        select(OutboxMessage.id)
        .where(_due(now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    claim = (
        update(OutboxMessage)
        .values(status="sending", claimed_by=worker, claimed_until=now + lease)
        .returning(*_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    with db.transaction() as session:
        if db.engine.dialect.name == "postgresql":
            # Lock first, then update exactly those rows. (As a subquery of the UPDATE the
            # locking SELECT may be run again per row and pick up more than `limit`.)
            ids = session.scalars(candidates.with_for_update(skip_locked=True)).all()
            if not ids:
                return []
            claim = claim.where(OutboxMessage.id.in_(ids))
        else:
            # SQLite: one statement under the single writer lock; the guard repeats _due.
            claim = claim.where(OutboxMessage.id.in_(candidates.scalar_subquery()), _due(now))
        rows = session.execute(claim).all()
    claimed = [
        Outgoing(**{**row._asdict(), "attachments": tuple(row.attachments or ())})
        for row in rows
    ]
    return sorted(claimed, key=lambda r: r.id)


def _mine(row_id: int, worker: str) -> ColumnElement[bool]:
    return and_(
        OutboxMessage.id == row_id,
        OutboxMessage.status == "sending",
        OutboxMessage.claimed_by == worker,
    )


def mark_sent(db: Database, row_ids: list[int], *, worker: str, now: datetime) -> int:
    """Record that the server accepted these messages; returns how many were still ours."""
    if not row_ids:
        return 0
    with db.transaction() as session:
        return session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(row_ids),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(status="sent", sent_at=now, attempts=OutboxMessage.attempts + 1,
                    last_error=None, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount


def mark_failed(db: Database, row_id: int, *, worker: str, error: str) -> bool:
    """Record a permanent failure, with the server's answer, for a caseworker to see."""
    with db.transaction() as session:
        return session.execute(
            update(OutboxMessage)
            .where(_mine(row_id, worker))
            .values(status="failed", attempts=OutboxMessage.attempts + 1, last_error=error,
                    claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount == 1


def mark_retry(
    db: Database, row_id: int, *, worker: str, error: str, next_attempt_at: datetime
) -> bool:
    """Record a temporary failure; the row is due again at `next_attempt_at`."""
    with db.transaction() as session:
        return session.execute(
            update(OutboxMessage)
            .where(_mine(row_id, worker))
            .values(status="pending", attempts=OutboxMessage.attempts + 1, last_error=error,
                    next_attempt_at=next_attempt_at, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount == 1


def release(db: Database, row_ids: list[int], *, worker: str) -> None:
    """Give back claimed rows that were not attempted; they stay due, no attempt counted."""
    if not row_ids:
        return
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(row_ids),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(status="pending", claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def count_waiting(db: Database) -> int:
    """Rows still to be sent: pending (due or backing off) or being sent."""
    with db.transaction() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "sending")))
        ) or 0
