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

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from core import workers
from core.db import Database, rowcount
from notifications.mime import Outgoing
from notifications.models import OutboxMessage

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
    """Claim up to `limit` due rows for `worker`, oldest first, and return them.

    Core statements on a connection, not a Session: the rows are read as plain tuples,
    without the ORM's machinery for each."""
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
    )
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            # Lock first, then update exactly those rows. (As a subquery of the UPDATE the
            # locking SELECT may be run again per row and pick up more than `limit`.)
            ids = conn.scalars(candidates.with_for_update(skip_locked=True)).all()
            if not ids:
                return []
            claim = claim.where(OutboxMessage.id.in_(ids))
        else:
            # SQLite: one statement under the single writer lock; the guard repeats _due.
            claim = claim.where(OutboxMessage.id.in_(candidates.scalar_subquery()), _due(now))
        rows = conn.execute(claim).all()
    claimed = [
        Outgoing(**{**row._asdict(), "attachments": tuple(row.attachments or ())}) for row in rows
    ]
    return sorted(claimed, key=lambda r: r.id)


_T = cast(Table, OutboxMessage.__table__)

# A row this worker holds: claimed (`sending`), or handed over to the server with the
# server's answer still to be read (`sent`, still carrying the claim).
_HELD = ("sending", "sent")


def _mine(row_id: int, worker: str) -> ColumnElement[bool]:
    return and_(
        OutboxMessage.id == row_id,
        OutboxMessage.status.in_(_HELD),
        OutboxMessage.claimed_by == worker,
    )


def _as_confirmed(now: Any) -> dict[str, Any]:
    """What a row becomes once the server's acceptance is read: sent (at the hand-over's
    time, else now), its attempt counted, its claim given up. One definition for mark_sent
    and for the confirmation that rides on the next hand-over (_HAND_OVER)."""
    return {
        "status": "sent",
        "sent_at": func.coalesce(_T.c.sent_at, now),
        "attempts": _T.c.attempts + 1,
        "last_error": null(),
        "claimed_by": null(),
        "claimed_until": null(),
    }


def _confirm(row_ids: list[int], worker: str, now: datetime) -> Update:
    return (
        update(_T)
        .where(_T.c.id.in_(row_ids), _T.c.status.in_(_HELD), _T.c.claimed_by == worker)
        .values(**_as_confirmed(now))
    )


def mark_sent(db: Database, row_ids: list[int], *, worker: str, now: datetime) -> int:
    """Record that the server accepted these messages; returns how many were still ours."""
    if not row_ids:
        return 0
    with db.transaction() as session:
        return rowcount(session.execute(_confirm(row_ids, worker, now)))


def keep_for_hand_overs(db: Database) -> Connection:
    """The connection a sender keeps for mark_handed_over, in autocommit: each hand-over is
    one statement, which commits on its own (no BEGIN and COMMIT around it)."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def mark_handed_over(
    conn: Connection, row_id: int, *, worker: str, now: datetime, confirm: int | None
) -> tuple[bool, bool]:
    """Record, just before the server is given the end of the message, that it is sent.

    From this commit on no sender will send the row again, even if this process dies
    before reading the server's answer; a refusal read afterwards turns the row back
    (mark_retry, mark_failed). The same statement confirms `confirm`, the row handed over
    before, whose acceptance was read since. Returns (whether the row was still ours,
    whether `confirm` was).

    This runs once per message, so it is one Core statement built once, run on the
    connection the sender keeps (keep_for_hand_overs: no pool checkout and ping each time,
    no BEGIN and COMMIT): a single UPDATE is its own transaction, committed once its
    RETURNING rows have all been read, which is done here, before the call returns. That
    commit waits for the disk like any other: a record lost in a database crash would send
    the email again.
    """
    params = {"b_id": row_id, "b_confirm": confirm, "b_worker": worker, "b_now": now}
    changed = set(conn.execute(_HAND_OVER, params).scalars().all())
    return row_id in changed, confirm is not None and confirm in changed


# The row handed over now goes from `sending` to `sent`, its claim kept until the server's
# answer is read; the row confirmed becomes _as_confirmed. One UPDATE does both: CASE tells
# the two rows apart.
_THIS = _T.c.id == bindparam("b_id")
_CONFIRMED = _as_confirmed(bindparam("b_now"))
_HAND_OVER = (
    update(_T)
    .where(
        _T.c.claimed_by == bindparam("b_worker"),
        or_(
            and_(_THIS, _T.c.status == "sending"),
            # status IN _HELD, spelt out: an IN list is rendered anew at every execution
            and_(_T.c.id == bindparam("b_confirm"), or_(*(_T.c.status == s for s in _HELD))),
        ),
    )
    .values(
        status="sent",
        sent_at=case((_THIS, bindparam("b_now")), else_=_CONFIRMED["sent_at"]),
        **{
            column: case((_THIS, _T.c[column]), else_=value)
            for column, value in _CONFIRMED.items()
            if column not in ("status", "sent_at")
        },
    )
    .returning(_T.c.id)
)


def mark_failed(db: Database, row_id: int, *, worker: str, error: str) -> bool:
    """Record a permanent failure, with the server's answer, for a caseworker to see."""
    return _release(db, row_id, worker, status="failed", last_error=error)


def mark_retry(
    db: Database, row_id: int, *, worker: str, error: str, next_attempt_at: datetime
) -> bool:
    """Record a temporary failure; the row is due again at `next_attempt_at`."""
    return _release(
        db, row_id, worker, status="pending", last_error=error, next_attempt_at=next_attempt_at
    )


def _release(db: Database, row_id: int, worker: str, **values: object) -> bool:
    """Count an attempt that did not send and give up the claim, if the row is still ours."""
    with db.transaction() as session:
        done = session.execute(
            update(OutboxMessage)
            .where(_mine(row_id, worker))
            .values(
                attempts=OutboxMessage.attempts + 1,
                sent_at=None,
                claimed_by=None,
                claimed_until=None,
                **values,
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(done) == 1


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


# Left on a row handed to the server by a sender that died before reading the answer.
UNCONFIRMED = (
    "Handed to the mail server just as the service stopped, before the server's "
    "answer was read: most likely delivered, and not sent again so that nobody "
    "gets it twice. If the recipient says it never came, send it again."
)
# Left on a row whose end of message went to the server, which then gave no answer the
# sender could read: the connection dropped or timed out, or the answer was garbled. The
# server may have taken it (RFC 1047), so it is not sent again unasked.
UNANSWERED = (
    "Handed to the mail server, but no answer came back (the connection was lost or "
    "timed out, or the answer could not be read): most likely delivered, and not sent "
    "again so that nobody gets it twice. If the recipient says it never came, send it again."
)
UNCONFIRMED_REASONS = (UNCONFIRMED, UNANSWERED)


@dataclass(frozen=True)
class Abandoned:
    released: int  # never handed to the server: due again at once
    unconfirmed: int  # handed over, the server's answer never read: left as sent, flagged


def release_abandoned(
    db: Database, now: datetime, ended: Collection[str] = ()
) -> dict[str, Abandoned]:
    """Take back the rows of senders on this host that have died, and of earlier senders
    of this process that `ended` on an error (they failed mid-batch, the database gone,
    before they could give their rows back).

    Without this they wait out the lease. Rows still `sending` were never handed to the
    SMTP server (mark_handed_over), so they are due again at once. Rows handed over whose
    answer was never read stay `sent`, with UNCONFIRMED as their last error so that a
    person can see them; so do such rows of any sender, on any host, whose claim has run
    out (_unconfirm_expired). Returns what was done per sender.
    """
    found: dict[str, Abandoned] = {}
    with db.transaction() as session:
        holders = session.scalars(
            select(OutboxMessage.claimed_by)
            .distinct()
            .where(OutboxMessage.status.in_(_HELD), OutboxMessage.claimed_by.is_not(None))
        ).all()
        for holder in filter(None, holders):  # the query asks for claimed rows only
            if not (workers.gone(holder) or workers.left_by_this_process(holder, ended)):
                continue
            released = rowcount(
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.status == "sending", OutboxMessage.claimed_by == holder)
                    .values(status="pending", claimed_by=None, claimed_until=None)
                    .execution_options(synchronize_session=False)
                )
            )
            unconfirmed = _leave_sent(session, UNCONFIRMED, OutboxMessage.claimed_by == holder)
            found[holder] = Abandoned(released, unconfirmed)
        for holder, count in _unconfirm_expired(session, now).items():
            earlier = found.get(holder, Abandoned(0, 0))
            found[holder] = Abandoned(earlier.released, earlier.unconfirmed + count)
    return found


# How long past its end a handed-over row's claim must be before the row is flagged: as
# long again as a lease, for a live sender held up by a server slow to answer, or by a
# clock a little behind this host's.
LAPSED_FOR = timedelta(minutes=10)


def _unconfirm_expired(session, now: datetime) -> dict[str, int]:
    """Flag rows handed over under a claim that ran out long ago (LAPSED_FOR), whoever held
    it. A live sender reads each answer inside its lease (it starts no message near the end
    of it), so such a row's sender is gone, though not known here as gone: it ran on
    another host, or in a container since given a new name. `sending` rows under a lapsed
    claim are due again by claim_due; these would otherwise keep the claim for good, unseen."""
    lapsed = and_(
        OutboxMessage.status == "sent",
        OutboxMessage.claimed_by.is_not(None),
        OutboxMessage.claimed_until < now - LAPSED_FOR,
    )
    holders = session.scalars(select(OutboxMessage.claimed_by).distinct().where(lapsed)).all()
    return {
        holder: _leave_sent(session, UNCONFIRMED, lapsed, OutboxMessage.claimed_by == holder)
        for holder in filter(None, holders)  # the query asks for claimed rows only
    }


def _leave_sent(session, reason: str, *where: ColumnElement[bool]) -> int:
    """Leave these handed-over rows sent, their claims cleared, flagged with `reason` (one
    of UNCONFIRMED_REASONS) for a person to see; how many there were."""
    return rowcount(
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sent", *where)
            .values(claimed_by=None, claimed_until=None, last_error=reason)
            .execution_options(synchronize_session=False)
        )
    )


def is_unconfirmed(status: str, last_error: str | None) -> bool:
    """Handed to the mail server, whose answer was never heard: the sender died first
    (flagged so by release_abandoned) or the server did not answer (mark_unanswered)."""
    return status == "sent" and last_error in UNCONFIRMED_REASONS


def unconfirmed_clause() -> ColumnElement[bool]:
    """is_unconfirmed as a WHERE clause."""
    return and_(OutboxMessage.status == "sent", OutboxMessage.last_error.in_(UNCONFIRMED_REASONS))


def mark_unanswered(db: Database, row_id: int, *, worker: str) -> bool:
    """The row was handed over (recorded `sent`) and the server's answer never came: it
    stays sent, its claim cleared, flagged UNANSWERED for a person to see."""
    with db.transaction() as session:
        return _leave_sent(session, UNANSWERED, _mine(row_id, worker)) == 1


def count_unconfirmed(session) -> int:
    """Rows recorded as sent whose acceptance by the server was never heard."""
    return (
        session.scalar(select(func.count()).select_from(OutboxMessage).where(unconfirmed_clause()))
        or 0
    )


def count_waiting(db: Database) -> int:
    """Rows still to be sent: pending (due or backing off) or being sent."""
    with db.transaction() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            )
            or 0
        )
